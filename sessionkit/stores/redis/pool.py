"""The async connection pool of a plain Redis store: waits for a free connection, cheaply.

redis.asyncio's ``ConnectionPool`` *refuses* a command once ``max_connections`` are in use
(a burst of requests on a healthy Redis answered 503), and its ``BlockingConnectionPool``,
which waits instead, pays for the wait on every command even when a connection is free: a
condition, a timeout scheduled and cancelled, a context manager and a notify per command,
about 80,000 CPU instructions per ``HGETALL`` more than the plain pool (bench/README.md). This
pool is the plain one with a semaphore of ``max_connections`` in front: taking a free slot is
a counter decrement, and only a request that finds none waits (at most ``timeout`` seconds,
and never past the store operation's own deadline, which cancels the wait).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio
import redis.exceptions


class WaitingConnectionPool(redis.asyncio.ConnectionPool):
    """``redis.asyncio.ConnectionPool`` that waits for a free connection instead of refusing
    one. Like every redis.asyncio pool it belongs to one event loop."""

    def __init__(self, *, timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self.timeout = timeout
        self._free = asyncio.Semaphore(self.max_connections)
        self._lent: set[Any] = set()  # connections that hold a slot: released exactly once

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._free.locked():  # every connection in use: wait for one, bounded
            try:
                async with asyncio.timeout(self.timeout):
                    await self._free.acquire()
            except TimeoutError as exc:
                raise redis.exceptions.ConnectionError("No connection available.") from exc
        else:
            await self._free.acquire()  # returns at once: a slot is free
        try:
            taken = super().get_connection  # untyped in redis-py
            connection = await taken(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            self._free.release()
            raise
        self._lent.add(connection)
        return connection

    async def release(self, connection: Any) -> None:
        try:
            await super().release(connection)
        finally:
            if connection in self._lent:
                self._lent.discard(connection)
                self._free.release()
