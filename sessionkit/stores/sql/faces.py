"""The two faces of a SQL store: a sync ``Engine`` and, per running event loop, an
``AsyncEngine``; each runs an operation's steps in one transaction, after making sure the
table is ready (once per face), and turns a database outage into ``StoreUnavailable``.

asyncio connections belong to the event loop that opened them, so the async face keeps one
pool per running loop (a server runs one) and closes it as that loop shuts down; test clients
that start a loop per request therefore never reuse a dead loop's connection. An in-memory
SQLite database *is* its connection: each face then holds one, taking transactions in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ...errors import StoreUnavailable
from ...sansio import run_async, run_sync
from .steps import Steps, T, aperform, is_unavailable, perform

_SQLITE_BUSY_SECONDS = 30


def _enable_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


async def _close_with_loop(engine: AsyncEngine) -> AsyncGenerator[None, None]:
    """Parked for the life of an event loop: ``asyncio.run`` closes open async generators
    before it closes the loop, which runs this ``finally`` while connections can still close."""
    try:
        yield
    finally:
        await engine.dispose()


@dataclasses.dataclass(slots=True)
class _AsyncFace:
    """The async engine one event loop uses, and what the face serializes on that loop."""

    engine: AsyncEngine
    prepare_lock: asyncio.Lock
    serial: contextlib.AbstractAsyncContextManager[Any]
    keeper: AsyncGenerator[None, None] | None


class Faces:
    """The engines of one store and the transactions run on them. ``prepare`` gives the
    steps that make the table ready; ``name`` and ``secrets`` shape outage errors."""

    def __init__(self, sync_url: sa.URL, async_url: sa.URL, dialect: str, *, name: str,
                 secrets: tuple[str, ...], prepare: Callable[[], Steps[None]]) -> None:
        self.sync_url, self.async_url = sync_url, async_url
        self._dialect = dialect
        self._name = name
        self._secrets = secrets
        self._prepare = prepare
        self._in_memory = dialect == "sqlite" and sync_url.database in (None, "", ":memory:")
        self._lock = threading.Lock()  # the engines
        self._prepare_lock = threading.Lock()
        # One shared in-memory connection cannot hold two transactions: take them in turn.
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._in_memory else contextlib.nullcontext()
        )
        self._engine: sa.Engine | None = None
        self._sync_ready = False
        self._async_faces: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncFace] = (
            weakref.WeakKeyDictionary()
        )
        self._memory_async_engine: AsyncEngine | None = None
        self._async_ready = False

    # --- transactions -------------------------------------------------------------------------
    def run(self, steps: Steps[T]) -> T:
        """Run ``steps`` in one transaction on the sync engine."""
        with self._unavailable_on_failure():
            engine = self._sync_engine()
            if not self._sync_ready:
                with self._prepare_lock:
                    if not self._sync_ready:
                        self._transact(engine, self._prepare())
                        self._sync_ready = True
            return self._transact(engine, steps)

    def _transact(self, engine: sa.Engine, steps: Steps[T]) -> T:
        with self._serial, engine.connect() as connection:
            result = run_sync(steps, functools.partial(perform, connection))
            connection.commit()
            return result

    async def arun(self, steps: Steps[T]) -> T:
        """Run ``steps`` in one transaction on this event loop's async engine."""
        with self._unavailable_on_failure():
            face = await self._async_face()
            if not self._async_ready:
                async with face.prepare_lock:
                    if not self._async_ready:
                        await self._atransact(face, self._prepare())
                        self._async_ready = True
            return await self._atransact(face, steps)

    async def _atransact(self, face: _AsyncFace, steps: Steps[T]) -> T:
        async with face.serial, face.engine.connect() as connection:
            result = await run_async(steps, functools.partial(aperform, connection))
            await connection.commit()
            return result

    @contextlib.contextmanager
    def _unavailable_on_failure(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if is_unavailable(exc):
                cause = (exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None
                         else exc)
                # Naming the store, but never its password.
                raise StoreUnavailable(self._name, cause, hide=self._secrets) from exc
            raise

    # --- engines ------------------------------------------------------------------------------
    def sync_engine(self) -> sa.Engine:
        return self._sync_engine()

    def _sync_engine(self) -> sa.Engine:
        engine = self._engine
        if engine is None:
            with self._lock:
                engine = self._engine
                if engine is None:
                    engine = self._engine = sa.create_engine(self.sync_url, **self._options())
                    self._configure(engine)
        return engine

    async def _async_face(self) -> _AsyncFace:
        loop = asyncio.get_running_loop()
        with self._lock:
            face = self._async_faces.get(loop)
            fresh = face is None
            if face is None:
                face = self._async_faces[loop] = self._new_async_face()
        if fresh and face.keeper is not None:
            await anext(face.keeper)  # from now on, this loop's shutdown closes the pool
        return face

    def _new_async_face(self) -> _AsyncFace:
        if self._in_memory:  # the database *is* the connection: one for every loop
            if self._memory_async_engine is None:
                self._memory_async_engine = self._new_async_engine()
            return _AsyncFace(self._memory_async_engine, asyncio.Lock(), asyncio.Lock(), None)
        engine = self._new_async_engine()
        keeper = _close_with_loop(engine)
        return _AsyncFace(engine, asyncio.Lock(), contextlib.nullcontext(), keeper)

    def _new_async_engine(self) -> AsyncEngine:
        engine = create_async_engine(self.async_url, **self._options())
        self._configure(engine.sync_engine)
        return engine

    def _options(self) -> dict[str, Any]:
        """Engine options: reconnect after an outage, keep session data out of errors."""
        options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
        if self._dialect == "sqlite":
            connect_args: dict[str, Any] = {}
            if "timeout" not in self.sync_url.query:
                connect_args["timeout"] = _SQLITE_BUSY_SECONDS
            if self._in_memory:
                options["poolclass"] = StaticPool
                connect_args["check_same_thread"] = False
            options["connect_args"] = connect_args
        return options

    def _configure(self, engine: sa.Engine) -> None:
        if self._dialect == "sqlite" and not self._in_memory:
            sa.event.listen(engine, "connect", _enable_wal)

    # --- closing ------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
            self._sync_ready = False
        if engine is not None:
            engine.dispose()

    async def aclose(self) -> None:
        """Close the running loop's pool (other loops' pools close as their loops end)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            face = self._async_faces.pop(loop, None)
            memory_engine, self._memory_async_engine = self._memory_async_engine, None
            if memory_engine is not None:
                self._async_faces.clear()
            self._async_ready = False
        if face is not None and face.keeper is not None:
            await face.keeper.aclose()
        if memory_engine is not None:
            await memory_engine.dispose()
