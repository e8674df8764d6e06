"""The local-mode worker check (``sessionkit.workers``) on a shared host.

Its lock file lives in a directory private to the user, is opened without following links and
never truncated, so a local user cannot make the app overwrite a file through a planted link.
It reports workers of one server (same parent, program and directory) and not unrelated apps
that happen to share an instance id, and a process removes the lock files it made when it
exits. The fuzz target that plants links, FIFOs and foreign files is in ``test_fuzz.py``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from sessionkit import SessionEngine, workers
from tests.support import KEY, unavailable

WARNING = "more than one worker process"
NOBODY = 65534
STARTUP_SECONDS = 60


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp directory standing for /tmp, for this process and the ones it starts."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def local_engine() -> tuple[SessionEngine, str]:
    """A local-mode engine with an instance id no other test uses (each is checked once)."""
    instance = f"lock-{uuid.uuid4().hex[:12]}"
    return SessionEngine(store="memory://", secret_key=KEY, instance_id=instance), instance


def tree(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry under ``folder``: (mode, owner, content or link target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        content = (os.readlink(path) if path.is_symlink()
                   else path.read_text() if path.is_file() else "")
        found[str(path.relative_to(folder))] = (info.st_mode, info.st_uid, content)
    return found


# --- a planted link or directory is never followed ----------------------------------------------
def test_a_link_planted_at_the_lock_path_is_never_followed(
    shared_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = shared_tmp.parent / "victim.txt"
    victim.write_text("precious data the app's user may write")
    engine, instance = local_engine()
    path = workers.lock_path(instance)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.symlink_to(victim)
    engine.lifecycle.request_started()  # the first request claims the instance
    session = engine.load(None)
    session["cart"] = ["apple"]
    engine.commit(session)  # and is served as usual
    assert victim.read_text() == "precious data the app's user may write"
    assert path.is_symlink() and os.readlink(path) == str(victim)
    assert "cannot check" in caplog.text and WARNING not in caplog.text


def test_the_lock_file_is_in_a_directory_only_its_user_can_enter(shared_tmp: Path) -> None:
    engine, instance = local_engine()
    engine.lifecycle.request_started()  # as the adapters do for every request
    engine.load(None)
    (private,) = shared_tmp.iterdir()  # nothing else in the shared directory
    info = private.lstat()
    assert private.is_dir() and not private.is_symlink()
    assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700
    assert workers.lock_path(instance).parent == private
    assert workers.lock_path(instance).lstat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's directory needs root")
@pytest.mark.parametrize("planted", ["other-owner", "open-to-all", "link"])
def test_a_private_directory_planted_by_someone_else_is_not_used(
    shared_tmp: Path, planted: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine, instance = local_engine()
    private = workers.lock_path(instance).parent
    elsewhere = shared_tmp / "attacker"
    elsewhere.mkdir()
    os.chown(elsewhere, NOBODY, NOBODY)
    if planted == "link":
        private.symlink_to(elsewhere)
    else:
        private.mkdir()
        private.chmod(0o700 if planted == "other-owner" else 0o777)
        os.chown(private, NOBODY, NOBODY)
    before = tree(shared_tmp)
    engine.lifecycle.request_started()  # as the adapters do for every request
    engine.load(None)
    assert tree(shared_tmp) == before  # nothing created, changed or removed
    assert "cannot check" in caplog.text


# --- what counts as workers of one server -----------------------------------------------------
APP = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    from sessionkit import SessionEngine
    engine = SessionEngine(store="memory://", secret_key={key!r}, instance_id={instance!r})
    engine.lifecycle.request_started()  # as the adapters do for every request
    engine.load(None)
    print("claimed", flush=True)
    sys.stdin.read()  # serve until the test closes stdin
""")


def write_app(folder: Path, instance: str) -> Path:
    folder.mkdir()
    script = folder / "app.py"
    script.write_text(APP.format(key=KEY, instance=instance))
    return script


class App:
    """One app process, started from its own directory; ``output`` is what it printed."""

    def __init__(self, script: Path) -> None:
        self.process = subprocess.Popen([sys.executable, str(script)], cwd=script.parent,
                                        text=True, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        self.output = ""
        while not self.output.endswith("claimed\n"):  # the warning, if any, comes first
            line = self.process.stdout.readline()
            assert line, f"the app ended before claiming: {self.output}"
            self.output += line

    def finish(self) -> str:
        out, _ = self.process.communicate(timeout=60)  # closes stdin: the app ends
        assert self.process.returncode == 0
        return self.output + out


def test_unrelated_apps_sharing_an_instance_id_are_not_reported(shared_tmp: Path) -> None:
    """Two apps on one host, both left at the default instance id (the host name): each is
    its own server, and neither is told it runs several workers."""
    instance = f"host-{uuid.uuid4().hex[:8]}"
    shop = App(write_app(shared_tmp.parent / "shop", instance))
    blog = App(write_app(shared_tmp.parent / "blog", instance))
    assert WARNING not in blog.finish() + shop.finish()
    # The same program started twice from one directory by one parent is what a pre-fork
    # server's workers look like: that is reported.
    first = App(shared_tmp.parent / "shop" / "app.py")
    second = App(shared_tmp.parent / "shop" / "app.py")
    assert WARNING in second.finish()
    assert WARNING not in first.finish()
    assert list(shared_tmp.rglob("*.lock")) == []  # both removed their lock files


def test_lock_files_of_killed_processes_are_removed_by_the_next_claim(shared_tmp: Path) -> None:
    crashed = App(write_app(shared_tmp.parent / "shop", f"host-{uuid.uuid4().hex[:8]}"))
    crashed.process.kill()  # SIGKILL: no chance to clean up
    crashed.process.communicate(timeout=60)
    (stale,) = shared_tmp.rglob("*.lock")
    engine, instance = local_engine()
    engine.lifecycle.request_started()  # as the adapters do for every request
    engine.load(None)
    assert not stale.exists()
    assert list(shared_tmp.rglob("*.lock")) == [workers.lock_path(instance)]


def test_workers_of_one_gunicorn_are_reported_and_clean_up(shared_tmp: Path) -> None:
    if importlib.util.find_spec("gunicorn") is None:
        unavailable("gunicorn is not installed (pip install -e '.[dev]')")
    folder = shared_tmp.parent / "site"
    folder.mkdir()
    (folder / "site_app.py").write_text(textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        from sessionkit import SessionEngine
        engine = SessionEngine(store="memory://", secret_key={KEY!r}, instance_id="prefork")
        engine.lifecycle.request_started()  # as the adapters do for every request
        engine.load(None)
        print("claimed", flush=True)

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
    """))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0", "site_app:app"],
        cwd=folder, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: list[str] = []
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while sum(line == "claimed" for line in lines) < 2 and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert sum(line == "claimed" for line in lines) == 2, lines
        assert len(list(shared_tmp.rglob("*.lock"))) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        rest, _ = server.communicate(timeout=60)
    output = "\n".join(lines) + rest
    assert output.count(WARNING) == 1, output
    assert list(shared_tmp.rglob("*.lock")) == []
