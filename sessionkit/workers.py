"""Detecting a local (memory) store split across several worker processes of one instance.

``gunicorn -w 4`` or ``uvicorn --workers 4`` gives each worker its own memory: a session made
by one worker is unknown to the other three, so sessions break even behind a perfect sticky
load balancer. The first request a process serves in local mode claims the instance with a
lock file; a second live process of the same instance finds the lock taken and says so, loudly.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger("sessionkit")

_claimed: set[str] = set()
_lock_files: list[int] = []  # kept open: closing one would release its lock

if hasattr(os, "register_at_fork"):
    # A forked worker must claim for itself (it inherits the parent's open lock files).
    os.register_at_fork(after_in_child=_claimed.clear)


def lock_path(instance_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"sessionkit-{instance_id}.lock"


def claim(instance_id: str) -> int | None:
    """Claim ``instance_id`` for this process, once; return the PID of another process that
    holds it (None when this process is alone or the platform has no ``fcntl``)."""
    if instance_id in _claimed:
        return None
    _claimed.add(instance_id)
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (Windows)
        return None
    path = lock_path(instance_id)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        return int(holder) if holder.isdigit() and int(holder) != os.getpid() else None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _lock_files.append(fd)
    return None


def warn_if_shared(instance_id: str) -> None:
    other = claim(instance_id)
    if other is not None:
        logger.warning(
            "sessionkit: instance %r keeps sessions in memory in more than one worker process "
            "(this is pid %d, pid %d is another): each worker has its own memory, so sessions "
            "break even behind a sticky load balancer. Run one worker process per instance "
            "with threads (gunicorn -w 1 --threads 8; uvicorn without --workers), give each "
            "worker its own instance_id and route to it, or use a shared store (redis://, SQL).",
            instance_id, os.getpid(), other,
        )
