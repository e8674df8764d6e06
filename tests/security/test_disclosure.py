"""Small disclosures: what a cookie, ``ps``, a dump file or an error tells others.

- The route hint (``<id>.<instance>``) names the host only where a load balancer routes on it
  (local and hybrid modes); in plain shared mode it is an opaque id, stable per host.
- ``sessionkit inspect`` never takes the secret key as an argument (``ps`` shows arguments to
  every local user): it reads ``SESSIONKIT_SECRET_KEY`` or asks at the terminal.
- ``sessionkit export`` files are readable by their owner only.
- The "valid schemes" message lists every one, ``jwt://`` included.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessionkit import ConfigError, SessionConfig, SessionEngine
from sessionkit.cli import main
from tests.support import FRAMEWORKS, KEY, OLD_KEY, ShopClient, make_app

HOST = "build-server-7.corp.example"
FOLDED = "build-server-7-corp-example"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def on_host(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """This process runs on HOST with no instance id configured."""
    for name in ("SESSIONKIT_INSTANCE_ID", "POD_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOSTNAME", HOST)
    return monkeypatch


def route(framework: str, config: SessionConfig) -> str:
    """The instance part of the cookie a new session gets, and what ``/whoami`` says."""
    shop = ShopClient(framework, make_app(framework, config))
    assert shop.call("POST", "/cart/apple").status == 200
    assert shop.cookie is not None
    hint = shop.cookie.rpartition(".")[2]
    assert shop.call("GET", "/whoami").json["instance"] == hint
    return hint


# --- the route hint ---------------------------------------------------------------------------
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_shared_mode_cookies_do_not_name_the_host(framework: str, on_host: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    hint = route(framework, SessionConfig(store=url, secret_key=KEY))
    assert "build" not in hint and "corp" not in hint and "server" not in hint
    assert route(framework, SessionConfig(store=url, secret_key=KEY)) == hint  # stable: logs
    on_host.setenv("HOSTNAME", "build-server-8.corp.example")  # correlate per host
    assert route(framework, SessionConfig(store=url, secret_key=KEY)) != hint
    on_host.setenv("HOSTNAME", HOST)
    # keyed with the secret: nobody without it can test host names against the hint
    assert route(framework, SessionConfig(store=url, secret_key=[OLD_KEY])) != hint


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_modes_that_route_keep_the_host_and_an_explicit_id_always_wins(
        framework: str, on_host: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    assert route(framework, SessionConfig(store="memory://", secret_key=KEY)) == FOLDED
    assert route(framework, SessionConfig(store=url, secret_key=KEY, near_cache=True)) == FOLDED
    assert route(framework, SessionConfig(store=url, secret_key=KEY, instance_id="web-1")
                 ) == "web-1"
    on_host.setenv("SESSIONKIT_INSTANCE_ID", "web-2")
    assert route(framework, SessionConfig(store=url, secret_key=KEY)) == "web-2"


# --- sessionkit inspect and the secret key ------------------------------------------------------
def stored_session(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store holding one session: (url, its cookie value)."""
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    engine = SessionEngine(store=url, secret_key=KEY, instance_id="web-7")
    session = engine.load(None)
    session["cart"] = ["pear"]
    [cookie] = engine.commit(session).set_cookies
    return url, cookie.split(";")[0].split("=", 1)[1]


def test_inspect_refuses_the_secret_key_as_an_argument(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, cookie = stored_session(tmp_path)
    monkeypatch.delenv("SESSIONKIT_SECRET_KEY", raising=False)
    assert main(["inspect", url, cookie, "--secret-key", KEY]) == 2
    out, err = capsys.readouterr()
    assert "SESSIONKIT_SECRET_KEY" in err and "ps" in err
    assert KEY not in out + err and "created" not in out
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)
    assert main(["inspect", url, cookie]) == 0
    assert "cart = <list" in capsys.readouterr().out


def test_inspect_asks_for_the_secret_key_at_the_terminal(tmp_path: Path) -> None:
    url, cookie = stored_session(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "SESSIONKIT_SECRET_KEY"}
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the command, with the pty as its controlling terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "sessionkit.cli", "inspect", url,
                                   cookie], env)
    seen = b""
    try:
        seen = read_until(terminal, b"secret key")
        assert b"secret key" in seen.lower(), seen
        os.write(terminal, KEY.encode() + b"\n")
        seen += read_until(terminal, None)
    finally:
        status = ended(pid, 10)
        os.close(terminal)
    assert status is not None, f"the command still waited at its terminal: {seen!r}"
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"session " in seen and b"cart = <list" in seen
    assert KEY.encode() not in seen  # not echoed


def ended(pid: int, seconds: float) -> int | None:
    """The child's wait status once it ends, or None (and the child killed) if it is still
    running after ``seconds``: a failure must not hang the suite."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def read_until(fd: int, marker: bytes | None, seconds: float = 60) -> bytes:
    """What the terminal shows until ``marker`` (None: until the command ends)."""
    seen = b""
    deadline = time.monotonic() + seconds
    poller = select.poll()  # not select(): a long test session's descriptors pass 1024
    poller.register(fd, select.POLLIN)
    while time.monotonic() < deadline and (marker is None or marker not in seen.lower()):
        if not poller.poll(500):
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the command ended and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


# --- sessionkit export files --------------------------------------------------------------------
def test_export_to_a_file_makes_it_private(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = stored_session(tmp_path)
    dump = tmp_path / "dump.jsonl"
    assert main(["export", url, "--output", str(dump)]) == 0
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert len(dump.read_text().splitlines()) == 1
    assert main(["export", url, "--output", str(dump)]) == 2  # never over an existing file
    assert "exists" in capsys.readouterr().err
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    assert main(["export", url, "--output", str(link)]) == 2
    assert not (tmp_path / "elsewhere.jsonl").exists()


def test_export_redirected_to_a_file_makes_it_private(tmp_path: Path) -> None:
    """``sessionkit export URL > dump.jsonl``: the shell made the file with its umask."""
    url, _ = stored_session(tmp_path)
    dump = tmp_path / "dump.jsonl"
    with open(dump, "w") as out:
        dump.chmod(0o644)
        subprocess.run([sys.executable, "-m", "sessionkit.cli", "export", url], stdout=out,
                       stderr=subprocess.PIPE, cwd=ROOT, timeout=60, check=True)
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert len(dump.read_text().splitlines()) == 1


# --- messages -----------------------------------------------------------------------------------
def test_the_valid_schemes_message_lists_jwt() -> None:
    with pytest.raises(ConfigError, match="valid schemes") as error:
        SessionEngine(store="jtw://", secret_key=KEY)
    for scheme in ("memory://", "redis://", "sqlite://", "postgresql://", "jwt://"):
        assert scheme in str(error.value)
