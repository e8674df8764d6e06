"""What an app's session layer does at the edges of the process's life, explicitly.

The engine itself has no process-wide side effects. The adapters (``sessionkit.asgi``,
``sessionkit.wsgi``, ``sessionkit.flask``) call these at the right moments, and an app that
drives a ``SessionEngine`` itself calls them the same way:

* ``install_exit_hooks()`` once at startup: with ``drain_to`` set, a local instance copies its
  live sessions to the shared store at interpreter exit and on SIGTERM (unless the server
  handles SIGTERM itself, as gunicorn and uvicorn do; they drain through their shutdown).
* ``request_started()`` on every request: the first one in a process checks that a local
  (memory) store is not split across several worker processes (``sessionkit.workers``).
* ``drain()`` / ``adrain()`` at shutdown (ASGI lifespan ``shutdown``): copy the live
  sessions to ``drain_to`` now, once, bounded by ``drain_timeout``.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable, Generator
from typing import Any

from . import workers
from .sansio import run_async, run_sync
from .stores.base import Create, On, Store
from .stores.memory import MemoryStore

logger = logging.getLogger("sessionkit")


class Lifecycle:
    """Draining, exit hooks and the worker check of one engine."""

    def __init__(self, instance_id: str, local: MemoryStore | None, drain_to: Store | None,
                 *, absolute: float, drain_seconds: float, now: Callable[[], float]) -> None:
        self.instance_id = instance_id
        self.drain_to = drain_to
        self._local = local
        self._absolute = absolute
        self._drain_seconds = drain_seconds
        self._now = now
        self._drained = threading.Event()
        self._workers_checked = local is None
        self._hooks_installed = False

    def request_started(self) -> None:
        """Called by the adapters for every request; the first one checks the workers."""
        if not self._workers_checked:
            self._workers_checked = True
            workers.warn_if_shared(self.instance_id)

    def install_exit_hooks(self) -> None:
        """Drain at interpreter exit and on SIGTERM, when there is anything to drain."""
        if self.drain_to is None or self._hooks_installed:
            return
        self._hooks_installed = True
        atexit.register(_drain_at_exit, weakref.ref(self))
        _exit_on_sigterm()

    def drain(self) -> int:
        """Copy this instance's live sessions to ``drain_to`` (once); return how many moved."""
        if self.drain_to is None or self._local is None or self._drained.is_set():
            return 0
        self._drained.set()
        return self._report(*run_sync(self._steps(), _perform))

    async def adrain(self) -> int:
        if self.drain_to is None or self._local is None or self._drained.is_set():
            return 0
        self._drained.set()
        return self._report(*await run_async(self._steps(), _aperform))

    def _steps(self) -> Generator[On, Any, tuple[int, int, float]]:
        """Copy every live session; stop at the deadline (a shutdown must not hang)."""
        assert self._local is not None
        assert self.drain_to is not None
        started = time.monotonic()
        deadline = started + self._drain_seconds
        now = self._now()
        records = [(key, record) for batch in self._local.iter_records() for key, record in batch
                   if record.expires_at > now]
        moved = 0
        for key, record in records:
            if time.monotonic() >= deadline:
                break
            yield On(self.drain_to, Create(key, record, self._absolute))
            moved += 1
        return moved, len(records) - moved, time.monotonic() - started

    def _report(self, moved: int, left: int, seconds: float) -> int:
        assert self.drain_to is not None
        name = self.drain_to.name
        if left:
            logger.warning("sessionkit: drained %d sessions to %s in %.1fs; %d left behind "
                           "(time limit)", moved, name, seconds, left)
        else:
            logger.info("sessionkit: drained %d sessions to %s in %.1fs", moved, name, seconds)
        return moved


def _perform(request: On) -> Any:
    return request.store.execute(request.op)


async def _aperform(request: On) -> Any:
    return await request.store.aexecute(request.op)


def _drain_at_exit(reference: weakref.ref[Lifecycle]) -> None:
    lifecycle = reference()
    if lifecycle is None:
        return
    try:
        lifecycle.drain()
    except Exception:
        logger.exception("sessionkit: draining sessions at exit failed")


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit (so the drain at exit runs) unless someone handles it
    already: gunicorn and uvicorn do, and drain through their own shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
