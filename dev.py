#!/usr/bin/env python3
"""Developer commands that set up what they need: ``dev.py demo``, ``dev.py demo-cluster`` and
``dev.py test``.

Both create ``.venv`` on first use and install sessionkit with its ``[dev]`` extras into it
(again whenever pyproject.toml or the version changes), showing what pip fetches and installs
as it goes; only Python 3.11+ is needed beforehand.

  python3 dev.py demo [--flask] [--port N]   the example shop on the embedded memory store
  python3 dev.py demo-cluster [--mode M]      three shops behind HAProxy, with a live dashboard
                                              (--mode local, redis, hybrid, jwt or a store URL)
  python3 dev.py test [pytest args...]        the test suite (CI runs all of it)
  python3 dev.py test --quick [pytest args]   the quick tier, under a minute: unit tests and
                                              the store contract on memory, SQLite, fakeredis
  python3 dev.py bench [--quick] [...]        sessionkit against its peers (bench/README.md)
  python3 dev.py lint                         ruff and mypy
  python3 dev.py docs [OUT]                   the guides and API reference as HTML (docs/_build)
  python3 dev.py release-check                build, check and install the sdist and the wheel
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".sessionkit-installed"


def installed_stamp() -> str:
    """What the installed environment was built from: pyproject.toml (dependencies, extras)
    and the version file (the editable install's metadata carries the version)."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "sessionkit/_version.py"):
        path = ROOT / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (this script may run on an older Python)
        sys.exit(f"sessionkit needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = installed_stamp()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    log = VENV / "pip-install.log"
    log.unlink(missing_ok=True)
    steps = [("upgrading pip", [*pip, "--upgrade", "pip"]),
             ("installing sessionkit[dev] into .venv (the first time takes a few minutes)",
              [*pip, "-e", f"{ROOT}[dev]"])]
    for what, command in steps:
        status = pip_with_progress(command, what, log)
        if status != 0:
            sys.exit(f"dev.py: pip failed ({status}); its whole output is in {log}")
    STAMP.write_text(wanted)


class InstallProgress:
    """Turns pip's output into a few lines: what is being fetched or installed and that it is
    still working. On a terminal one status line is rewritten in place (package, count,
    seconds); elsewhere (CI logs, pipes) a line is printed at most every ``quiet_seconds``.
    pip's errors are printed as they come, its warnings counted (they are in the log), and
    its last lines shown when it fails."""

    _COLLECTING = re.compile(r"^(?:Collecting|Processing)\s+(\S+)")
    _OBTAINING = re.compile(r"^Obtaining\s+(\S+)")
    _INSTALLING = re.compile(r"^Installing collected packages: (.*)$")
    _INSTALLED = re.compile(r"^Successfully installed (.*)$")
    _BUILDING = re.compile(r"^\s*Building (?:wheel|editable) for (\S+)")

    def __init__(self, what: str, out: TextIO, tty: bool, quiet_seconds: float = 10.0) -> None:
        self.out = out
        self.tty = tty
        self.quiet_seconds = quiet_seconds
        self.started = time.monotonic()
        self.last_line = self.started
        self.collected = 0
        self.warnings = 0
        self.shown = ""
        self.state = "resolving"
        self.lock = threading.Lock()
        self.tail: deque[str] = deque(maxlen=30)
        self._say(f"dev.py: {what}")

    def _say(self, text: str) -> None:
        """A line that stays (on a terminal, it replaces the status line first)."""
        self.out.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.out.flush()
        self.last_line = time.monotonic()
        self.shown = ""

    def _status(self) -> None:
        elapsed = int(time.monotonic() - self.started)
        counted = f"{self.collected} so far, " if self.state.startswith("fetching") else ""
        text = f"dev.py:   {self.state} ({counted}{elapsed}s)"
        if self.tty:
            text = text[:shutil.get_terminal_size((80, 24)).columns - 1]
            if text != self.shown:  # rewritten only when it changes
                self.out.write("\r\x1b[K" + text)
                self.out.flush()
                self.shown = text
        elif time.monotonic() - self.last_line >= self.quiet_seconds:
            self._say(text)

    def feed(self, line: str) -> None:
        line = line.rstrip()
        self.tail.append(line)
        with self.lock:
            if match := self._COLLECTING.match(line):
                self.collected += 1
                self.state = f"fetching {match.group(1).rsplit('/', 1)[-1]}"
            elif self._OBTAINING.match(line):
                self.state = "reading the project's requirements"
            elif match := self._BUILDING.match(line):
                self.state = f"building {match.group(1)}"
            elif match := self._INSTALLING.match(line):
                count = _packages(len(match.group(1).split(",")))
                self.state = f"installing {count}"
                self._say(f"dev.py:   installing {count} (pip prints nothing while it unpacks "
                          "them)")
            elif line.startswith("ERROR"):
                self._say(line)
            elif line.startswith("WARNING"):
                self.warnings += 1
            self._status()

    def tick(self) -> None:
        with self.lock:
            self._status()

    def done(self, status: int) -> None:
        with self.lock:
            elapsed = time.monotonic() - self.started
            installed = next((m.group(1).split() for m in map(self._INSTALLED.match, self.tail)
                              if m), [])
            if status == 0:
                self._say(f"dev.py:   done in {elapsed:.0f}s"
                          + (f", {_packages(len(installed))} installed" if installed else "")
                          + (f" ({self.warnings} warnings from pip, in the log)"
                             if self.warnings else ""))
                return
            self._say(f"dev.py:   pip failed after {elapsed:.0f}s; its last lines:")
            for line in self.tail:
                self.out.write(f"    {line}\n")
            self.out.flush()


def _packages(count: int) -> str:
    return f"{count} package{'' if count == 1 else 's'}"


def pip_with_progress(command: list[str], what: str, log: Path, out: TextIO | None = None,
                      tty: bool | None = None) -> int:
    """Run pip with its output going to ``log`` and through ``InstallProgress`` to ``out``
    (stdout by default); returns pip's exit status."""
    out = out or sys.stdout
    progress = InstallProgress(what, out, out.isatty() if tty is None else tty)
    finished = threading.Event()

    def heartbeat() -> None:
        while not finished.wait(1.0):
            progress.tick()

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        with log.open("a") as saved, subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"}) as child:
            assert child.stdout is not None
            for line in child.stdout:
                saved.write(line)
                progress.feed(line)
            status = child.wait()
    finally:
        finished.set()
        ticker.join()
    progress.done(status)
    return status


def run(*args: str) -> int:
    """Run the venv's Python in the foreground. Ctrl-C reaches the child too (same process
    group): wait for it to finish its own cleanup instead of killing it."""
    child = subprocess.Popen([str(PYTHON), *args], cwd=ROOT)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "demo-cluster", "test", "lint", "docs", "bench",
                                   "release-check"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_environment()
    if command == "demo":
        app = "examples.flask_app" if "--flask" in rest else "examples.fastapi_app"
        return run("-m", app, *[a for a in rest if a != "--flask"])
    if command == "demo-cluster":
        return run("-m", "examples.demo_cluster", *rest)
    if command == "docs":
        return run("docs/build.py", *rest)
    if command == "test":
        if "--quick" in rest:
            rest = [arg for arg in rest if arg != "--quick"]
            return run("-m", "pytest", "-m", "quick", "-q", "tests/unit", "tests/contract",
                       *rest)
        return run("-m", "pytest", *rest)
    if command == "bench":
        return run("bench/run.py", *rest)
    if command == "release-check":
        return run("tools/check_release.py", *rest)
    return run("-m", "ruff", "check", ".") or run("-m", "mypy", "sessionkit", "tools")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
