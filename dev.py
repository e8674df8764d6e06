#!/usr/bin/env python3
"""Developer commands that set up what they need: ``dev.py demo``, ``dev.py demo-cluster`` and
``dev.py test``.

Both create ``.venv`` on first use and install sessionkit with its ``[dev]`` extras into it
(again whenever pyproject.toml changes); only Python 3.11+ is needed beforehand.

  python3 dev.py demo [--flask] [--port N]   the example shop on the embedded memory store
  python3 dev.py demo-cluster [--mode M]      three shops behind HAProxy, with a live dashboard
  python3 dev.py test [pytest args...]        the test suite
  python3 dev.py bench [--quick] [...]        sessionkit against its peers (bench/README.md)
  python3 dev.py lint                         ruff and mypy
  python3 dev.py docs [OUT]                   the guides and API reference as HTML (docs/_build)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".sessionkit-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (this script may run on an older Python)
        sys.exit(f"sessionkit needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print("dev.py: installing sessionkit[dev] into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


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
    if not argv or argv[0] not in ("demo", "demo-cluster", "test", "lint", "docs", "bench"):
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
        return run("-m", "pytest", *rest)
    if command == "bench":
        return run("bench/run.py", *rest)
    return run("-m", "ruff", "check", ".") or run("-m", "mypy", "sessionkit")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
