"""Detecting a local (memory) store split across several worker processes of one server.

``gunicorn -w 4`` or ``uvicorn --workers 4`` gives each worker its own memory: a session made
by one worker is unknown to the other three, so sessions break even behind a perfect sticky
load balancer. The first request a process serves in local mode claims the instance with a
lock file; a second live worker of the same server finds the lock taken and says so, loudly.

Workers of one server share their parent process, their program (``sys.argv``) and their
working directory: the lock is keyed on those and the instance id, so two unrelated apps on one
host that share an instance id (both left at the host name) are not reported.

The temp directory is shared with every local user, so the lock file lives in a directory of
the user's own (``<tmp>/sessionkit-<uid>``, mode 0700, refused when another user owns it or it
is a link), is opened without following links, must be a regular file of the user's and is
never truncated. A process removes the lock files it created when it exits (and the directory,
once empty); a claim removes those left by processes that were killed (nobody holds them).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import logging
import os
import stat
import sys
import tempfile
from pathlib import Path
from types import ModuleType

logger = logging.getLogger("sessionkit")

_claimed: set[str] = set()
#: Claims still open: closing one would release its lock.
_held: list[_Held] = []
#: What ``claim`` returns when another process holds the lock but its pid cannot be read
#: (it has locked the file and not written its pid yet).
UNKNOWN_PID = 0
_PID_WIDTH = 20
_ATTEMPTS = 3  # a lock file removed by its exiting owner between open and lock: try again
_SWEEP_LIMIT = 1000  # lock files looked at per claim, at most
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclasses.dataclass(frozen=True, slots=True)
class _Held:
    fd: int
    path: Path
    pid: int


if hasattr(os, "register_at_fork"):
    # A forked worker must claim for itself (it inherits the parent's open lock files).
    os.register_at_fork(after_in_child=_claimed.clear)


def private_dir() -> Path:
    """The directory of this user's lock files, inside the (shared) temp directory."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"sessionkit-{uid}"


def server_key(instance_id: str) -> str:
    """What makes processes workers of one server: the instance id, the parent process, the
    program and the working directory (hashed: a fixed-length, path-safe file name)."""
    try:
        folder = os.getcwd()
    except OSError:  # the working directory was removed
        folder = ""
    parts = [instance_id, str(os.getppid()), folder, *sys.argv]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def lock_path(instance_id: str) -> Path:
    return private_dir() / f"workers-{server_key(instance_id)}.lock"


def claim(instance_id: str) -> int | None:
    """Claim ``instance_id`` for this process, once; return the PID of another worker of the
    same server that holds it (``UNKNOWN_PID`` when it has not written it yet), or None when
    this process is alone or the check cannot be made (no ``fcntl``, an unsafe directory)."""
    if instance_id in _claimed:
        return None
    _claimed.add(instance_id)
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (Windows)
        return None
    for _ in range(_ATTEMPTS):
        done, holder = _try_claim(fcntl, lock_path(instance_id))
        if done:
            return holder
    return None


def _try_claim(fcntl: ModuleType, path: Path) -> tuple[bool, int | None]:
    """``(done, holder)``: not done when the lock file vanished meanwhile (try again)."""
    folder = _open_private_dir(path.parent)
    if folder is None:
        return True, None
    try:
        try:
            fd = os.open(path.name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK,
                         0o600, dir_fd=folder)
        except FileNotFoundError:  # the directory was removed by an exiting process
            return False, None
        except OSError as exc:  # a link (ELOOP), a directory...
            _cannot_check(path, f"cannot be opened safely ({exc.strerror})")
            return True, None
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or opened.st_uid != _uid():
            os.close(fd)
            _cannot_check(path, "is not a regular file of this user")
            return True, None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            return True, None if holder == os.getpid() else holder
        if not _still_named(path.name, folder, opened):  # its owner removed it on exit
            os.close(fd)
            return False, None
        os.pwrite(fd, f"{os.getpid():<{_PID_WIDTH}}\n".encode(), 0)  # fixed width: no truncate
        _held.append(_Held(fd, path, os.getpid()))
        _sweep(fcntl, folder, path.name)
        return True, None
    finally:
        os.close(folder)


def _sweep(fcntl: ModuleType, folder: int, mine: str) -> None:
    """Remove the lock files of processes that died without cleaning up (killed): nobody
    holds their lock. A process about to lock one finds it gone and makes a new one."""
    for name in os.listdir(folder)[:_SWEEP_LIMIT]:
        if name == mine or not (name.startswith("workers-") and name.endswith(".lock")):
            continue
        try:
            fd = os.open(name, os.O_RDWR | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
        except OSError:
            continue
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode) or opened.st_uid != _uid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # alive
            if _still_named(name, folder, opened):
                os.unlink(name, dir_fd=folder)
        except OSError:
            continue
        finally:
            os.close(fd)


def _open_private_dir(folder: Path) -> int | None:
    """A descriptor of this user's lock directory (created 0700), or None when what is there
    is not safe to use: a link, or a directory someone else owns."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass  # made earlier by this user, or planted by another: checked below
    except OSError as exc:
        _cannot_check(folder, f"cannot be created ({exc.strerror})")
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC)
    except OSError:
        _cannot_check(folder, "is not a directory (a link?)")
        return None
    info = os.fstat(fd)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != _uid():
        os.close(fd)
        _cannot_check(folder, "belongs to another user")
        return None
    if info.st_mode & 0o077:
        os.fchmod(fd, 0o700)  # ours, made with a loose umask: only we may enter it
    return fd


def _still_named(name: str, folder: int, opened: os.stat_result) -> bool:
    try:
        now = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


def _read_pid(fd: int) -> int:
    words = os.pread(fd, _PID_WIDTH + 1, 0).split()
    return int(words[0]) if words and words[0].isdigit() else UNKNOWN_PID


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def _cannot_check(path: Path, reason: str) -> None:
    logger.warning(
        "sessionkit: cannot check for several worker processes sharing a local store: %s %s; "
        "nothing is written there. Remove it if it is not this user's.", path, reason,
    )


def release() -> None:
    """Remove the lock files this process created, and their directory once empty (run at
    exit; a forked child leaves its parent's alone)."""
    pid = os.getpid()
    mine = [held for held in _held if held.pid == pid]
    for held in mine:
        _held.remove(held)
        with contextlib.suppress(OSError):
            if _same_file(held.path, os.fstat(held.fd)):
                held.path.unlink()  # while still locked: nobody else is using it
        with contextlib.suppress(OSError):
            os.close(held.fd)
    for folder in {held.path.parent for held in mine}:
        with contextlib.suppress(OSError):  # not empty: other servers' locks are there
            folder.rmdir()


def _same_file(path: Path, opened: os.stat_result) -> bool:
    now = path.lstat()
    return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


atexit.register(release)


def warn_if_shared(instance_id: str) -> None:
    other = claim(instance_id)
    if other is not None:
        logger.warning(
            "sessionkit: instance %r keeps sessions in memory in more than one worker process "
            "(this is pid %d, %s is another): each worker has its own memory, so sessions "
            "break even behind a sticky load balancer. Run one worker process per instance "
            "with threads (gunicorn -w 1 --threads 8; uvicorn without --workers), give each "
            "worker its own instance_id and route to it, or use a shared store (redis://, SQL).",
            instance_id, os.getpid(), f"pid {other}" if other else "a process starting up",
        )
