"""What SQL store operations yield besides statements (``Sleep``, ``Call``, ``Transaction``),
how each face performs a step, and how a database's errors are read: an outage (503), a lost
connection (run again on a fresh one), a conflict the database asks to retry."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
import time
from collections.abc import Callable, Generator
from typing import Any, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...errors import StoreUnavailable

T = TypeVar("T")
_BACKOFF_FIRST = 0.005
_BACKOFF_CAP = 0.2

@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before retrying: ``time.sleep`` on the sync face, ``asyncio.sleep`` on the async."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """Run a SQLAlchemy API that is not one statement (``create_all``, inspection) on the
    sync ``Connection``; the async face hands it to ``AsyncConnection.run_sync``."""

    function: Callable[[sa.Connection], Any]


class Transaction(enum.Enum):
    """End the current transaction; the next statement starts a new one."""

    COMMIT = "commit"
    ROLLBACK = "rollback"


Step: TypeAlias = sa.Executable | Sleep | Call | Transaction
Steps: TypeAlias = Generator[Step, Any, T]


def perform(connection: sa.Connection, step: Step) -> Any:
    """Perform one step on the sync face (``sessionkit.sansio.run_sync`` drives the steps)."""
    if isinstance(step, Sleep):
        time.sleep(step.seconds)
        return None
    if isinstance(step, Call):
        return step.function(connection)
    if step is Transaction.COMMIT:
        connection.commit()
        return None
    if step is Transaction.ROLLBACK:
        connection.rollback()
        return None
    return connection.execute(step)


async def aperform(connection: AsyncConnection, step: Step) -> Any:
    """The same on the async face: only here does awaiting differ."""
    if isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
        return None
    if isinstance(step, Call):
        return await connection.run_sync(step.function)
    if step is Transaction.COMMIT:
        await connection.commit()
        return None
    if step is Transaction.ROLLBACK:
        await connection.rollback()
        return None
    return await connection.execute(step)


def is_unavailable(exc: BaseException) -> bool:
    """A failure of the database or the way to it, as opposed to a bug or a bad schema."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True  # sa.exc.TimeoutError: no pooled connection came free in time
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated
    return isinstance(exc, OSError)  # TimeoutError and ConnectionError included


def connection_lost(error: StoreUnavailable) -> bool:
    """The operation failed because its pooled connection had died (a restarted database, a
    killed backend, a dropped socket): the pool has discarded it, so running the operation
    again gets a fresh one. Every operation is one transaction and safe to repeat (writes are
    upserts, merges of the same delta, deletes), so the request need not see the outage."""
    cause = error.__cause__
    return isinstance(cause, sa.exc.DBAPIError) and cause.connection_invalidated


#: Errors a database raises to ask for the transaction to be retried: MySQL/MariaDB deadlock
#: and lock wait timeout, PostgreSQL serialization failure and deadlock, SQLite busy.
_TRANSIENT_MYSQL = {1205, 1213}
_TRANSIENT_SQLSTATE = {"40001", "40P01"}


def is_transient_conflict(exc: sa.exc.DBAPIError) -> bool:
    original = exc.orig
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int) and args[0] in _TRANSIENT_MYSQL:
        return True
    if getattr(original, "sqlstate", None) in _TRANSIENT_SQLSTATE:
        return True
    return "database is locked" in str(original)


def backoff(attempt: int) -> float:
    """Full jitter: concurrent retries spread out instead of colliding again."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_FIRST * 2**attempt))  # noqa: S311
