"""One deadline for a whole store operation, retries included.

redis-py bounds each socket read by ``socket_timeout`` but then retries, and a Cluster client
also re-reads the slot map between tries: a request to a slot whose master hangs took 7 to 10
seconds and more with a 2 s timeout. sessionkit gives each operation one deadline instead
(``deadline`` in the URL, 3 s by default):

* async: the operation runs under ``asyncio.timeout``, which cancels whatever is awaited;
* sync: the deadline is set in a context variable for the calling thread, and the connection
  classes below cap every connect and every read by the time left, and fail at once when none
  is left. The retry policy stops retrying, and its back-off stops sleeping, past it. What
  remains is at most one of redis-py's own pauses between Cluster tries (0.25 s).
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis.backoff
import redis.exceptions
import redis.retry

DEFAULT_DEADLINE = 3.0  # seconds for one store operation, every retry included
RETRIES = 3  # tries after the first, within the deadline
BACKOFF_BASE = 0.05
BACKOFF_CAP = 0.5

_end: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "sessionkit_redis_deadline", default=None)

T = TypeVar("T")


def remaining() -> float | None:
    """Seconds left for the current operation of this thread; None outside one."""
    end = _end.get()
    return None if end is None else end - time.monotonic()


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Run the sync code inside under one deadline ``seconds`` from now."""
    token = _end.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _end.reset(token)


def _expired(what: str) -> redis.exceptions.TimeoutError:
    return redis.exceptions.TimeoutError(f"sessionkit deadline passed {what}")


class BoundedConnection:
    """Mixed into redis-py's sync connection classes: connects and reads take at most the
    time left, and none starts once it is gone. (Only public attributes and the socket's own
    timeout are used, so every redis-py version from 5 on behaves alike.)"""

    socket_connect_timeout: float | None
    socket_timeout: float | None
    disconnect: Callable[..., Any]

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        left = remaining()
        if left is None:
            return super().connect(*args, **kwargs)  # type: ignore[misc]
        if left <= 0:
            raise _expired("before connecting")
        configured = self.socket_connect_timeout
        self.socket_connect_timeout = left if configured is None else min(configured, left)
        try:
            return super().connect(*args, **kwargs)  # type: ignore[misc]
        finally:
            self.socket_connect_timeout = configured

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        left = remaining()
        sock: Any = getattr(self, "_sock", None)
        if left is None or sock is None:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        if left <= 0:
            self.disconnect()  # a reply is pending: this connection is out of step
            raise _expired("before a reply came")
        configured = self.socket_timeout
        if configured is not None and configured <= left:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        sock.settimeout(left)
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        finally:
            with contextlib.suppress(OSError):  # closed meanwhile: nothing to restore
                sock.settimeout(configured)


_bounded: dict[type[Any], type[Any]] = {}


def bounded_class(base: type[Any], *, shared: bool = True) -> type[Any]:
    """``base`` (a redis-py sync connection class) with the deadline applied; made once per
    class unless ``shared`` is false (a class of one store's own)."""
    found = _bounded.get(base) if shared else None
    if found is None:
        found = type(f"Bounded{base.__name__}", (BoundedConnection, base), {})
        if shared:
            _bounded[base] = found
    return found


class BoundedBackoff(redis.backoff.AbstractBackoff):
    """Exponential back-off with jitter that never sleeps past the deadline."""

    def __init__(self) -> None:
        self._inner = redis.backoff.FullJitterBackoff(cap=BACKOFF_CAP,
                                                                  base=BACKOFF_BASE)

    def compute(self, failures: int) -> float:
        pause = self._inner.compute(failures)
        left = remaining()
        return pause if left is None else max(0.0, min(pause, left))


class BoundedRetry(redis.retry.Retry):
    """redis-py's retry policy, with one more rule: no try starts once the deadline has
    passed. (Its own loop, so that it works alike with every redis-py version.)"""

    def __init__(self, retries: int = RETRIES) -> None:
        super().__init__(BoundedBackoff(), retries)
        self.tries = 1 + retries
        self.backoff = BoundedBackoff()
        self.errors: tuple[type[Exception], ...] = (
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, socket.timeout)

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        failures = 0
        while True:
            try:
                return do()
            except self.errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                left = remaining()
                if failures >= self.tries or (left is not None and left <= 0):
                    raise
                pause = self.backoff.compute(failures)
                if pause > 0:
                    time.sleep(pause)
