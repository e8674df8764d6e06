"""What a redis-py error means for a request: one rule, used by the sync and the async client.

redis-py raises several outage errors as subclasses of ``ResponseError`` (``ClusterDownError``,
``MasterDownError``, ``TryAgainError``, ``ReadOnlyError``, ``OutOfMemoryError``) and others as
``RedisClusterException``, which is not a ``RedisError`` at all ("slots are not covered",
"cannot be connected"). So no error is judged by its base class: ``classify`` names one of

* ``NOT_OURS``: the key holds something other than a hash (``WRONGTYPE``). The only error
  that is data: the record is not a session and is never trusted (the cookie gets a fresh
  session, as for a garbled record);
* ``OUTAGE``: Redis cannot serve now (down, hung, failing over, loading, a slot without a
  node, full under ``noeviction``, refusing writes without enough replicas). The request is
  answered 503 with ``Retry-After``;
* ``REFUSED``: Redis answered with an error no retry will fix soon (an ACL without a needed
  command, a disabled command). Also 503: a fresh session would silently drop the user's
  data; the log names the reply;
* ``BUG``: redis-py refused the call itself (``DataError`` and the like): a programming error,
  left to propagate.

Anything else raised from inside redis-py (None here) the store treats as an outage too, and
logs with its traceback: redis.asyncio's Cluster client can fail with an ``AttributeError``
when a node's connections are closed under a command that is still connecting.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Final

import redis.exceptions as rx

from ...errors import StoreUnavailable


class Kind(enum.Enum):
    NOT_OURS = "not ours"
    OUTAGE = "outage"
    REFUSED = "refused"
    BUG = "bug"


class _NotOurs:
    """The reply to a command on a key that is not a hash: not a session record."""

    def __repr__(self) -> str:
        return "NOT_OURS"


#: Stands in the reply list for a command whose key is not a hash.
NOT_OURS: Final = _NotOurs()


class _NoScript:
    """The reply to ``EVALSHA`` from a server that does not know the script (yet)."""

    def __repr__(self) -> str:
        return "NO_SCRIPT"


#: Stands in the reply list for an ``EVALSHA`` the server answered ``NOSCRIPT``: the caller
#: sends the script itself (a restart or a failover empties a server's script cache).
NO_SCRIPT: Final = _NoScript()

_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # refused, reset, closed, LOADING, auth lost, pool exhausted
    rx.TimeoutError,
    rx.ClusterError,  # CLUSTERDOWN, MASTERDOWN, or cluster retries exhausted
    rx.TryAgainError,  # TRYAGAIN: a slot is moving
    rx.AskError,  # MOVED/ASK left over once redirections ran out: the cluster is reshaping
    rx.ReadOnlyError,  # READONLY: a replica answered (a failover is under way)
    rx.OutOfMemoryError,  # OOM under maxmemory-policy noeviction: writes refused
    rx.InvalidResponse,  # a broken reply stream (a proxy or a connection cut mid-reply)
    rx.RedisClusterException,  # no node serves the slot, or no node answers
    OSError,
    asyncio.TimeoutError,  # the async deadline
)
#: Error replies that mean "not now", by their first word; redis-py has no class for these.
_OUTAGE_CODES = frozenset({
    "NOREPLICAS",  # min-replicas-to-write not met
    "BUSY",  # a script runs too long
    "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "OOM",
    "MISCONF",  # RDB snapshots failing: writes refused
    "UNBLOCKED",  # the server became a replica while the command waited
})
_BUG_TYPES: tuple[type[BaseException], ...] = (rx.DataError, rx.PubSubError, rx.WatchError,
                                               rx.LockError)


def error_code(error: BaseException) -> str:
    """The first word of an error reply (``WRONGTYPE``, ``NOPERM``...), or ``""``."""
    code = getattr(error, "status_code", None)
    if code:
        return str(code)
    text = str(error.args[0]) if error.args else ""
    return text.split(" ", 1)[0] if text[:1].isupper() else ""


def classify(error: BaseException) -> Kind | None:
    """The kind of a redis-py (or socket) error; None for anything else."""
    if isinstance(error, rx.ResponseError) and error_code(error) == "WRONGTYPE":
        return Kind.NOT_OURS
    if isinstance(error, _OUTAGE_TYPES):
        return Kind.OUTAGE
    if isinstance(error, _BUG_TYPES):
        return Kind.BUG
    if isinstance(error, rx.RedisError):
        return Kind.OUTAGE if error_code(error) in _OUTAGE_CODES else Kind.REFUSED
    return None


class Refused(StoreUnavailable):
    """Redis refused a command for good (an ACL, a disabled command): answered as an outage,
    but logged as what it is."""


def unavailable(store: str, error: BaseException) -> StoreUnavailable:
    """The ``StoreUnavailable`` for an outage or refusal of ``store``."""
    if classify(error) is Kind.REFUSED:
        return Refused(store, error)
    return StoreUnavailable(store, error)


def reply(value: object) -> object:
    """A reply as the operations see it: an error reply of a pipeline is raised (translated
    by the caller), except ``WRONGTYPE``, which becomes ``NOT_OURS``, and ``NOSCRIPT``,
    which becomes ``NO_SCRIPT``."""
    if isinstance(value, BaseException):
        if classify(value) is Kind.NOT_OURS:
            return NOT_OURS
        if isinstance(value, rx.NoScriptError):
            return NO_SCRIPT
        raise value
    return value
