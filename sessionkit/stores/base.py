"""What a store is: a keeper of records that performs the operations the engine asks for.

The engine never does I/O. It yields the operations below; a sync runner hands them to
``Store.execute`` and an async runner awaits ``Store.aexecute``. A store therefore holds only
I/O, and every policy (expiry, regeneration, change detection) lives once, in the engine.

Records keep each session value as its own JSON text, so a write can be a *delta* (the keys
this request changed) merged atomically into the stored record: two concurrent requests that
change different keys both persist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from ..errors import ConfigError


def deadline(created_at: float, now: float, idle: float, absolute: float) -> float:
    """When a session used at ``now`` expires: the earlier of the idle and absolute limits."""
    return min(now + idle, created_at + absolute)


@dataclasses.dataclass(slots=True)
class Record:
    """One stored session. ``fields`` maps each session key to its JSON text."""

    fields: dict[str, str]
    created_at: float
    expires_at: float
    accessed_at: float
    user_id: str | None = None
    version: int = 1
    #: The instance that created the session (for ``sessionkit stats``), when known.
    instance: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Op:
    method: ClassVar[str]
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class Load(Op):
    """Return the record at ``key``, or None. The engine judges expiry against ``now`` and
    deletes an expired record it is given, so a store need not filter (it may drop what it
    knows expired). A store whose ``slides_on_load`` is true also slides the expiry and
    ``accessed_at`` in the same I/O."""

    method: ClassVar[str] = "load"
    now: float
    idle: float
    absolute: float


@dataclasses.dataclass(frozen=True, slots=True)
class Create(Op):
    """Write a whole new record (new, regenerated or re-keyed sessions). ``absolute`` is the
    configured absolute timeout: no session outlives it, so indexes may expire after it.

    With ``if_absent`` the write happens only if no record exists at ``key`` (atomically), and
    the result says whether it did: two requests moving one session from an old store must not
    both write it, or the second would overwrite what the first request then saved."""

    method: ClassVar[str] = "create"
    record: Record
    absolute: float
    if_absent: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Update(Op):
    """Merge a delta into the live record atomically; return False if it no longer exists
    (destroyed by a concurrent logout, regenerate or expiry): a delta never resurrects it.

    ``changes`` maps keys to their new JSON text, ``removed`` lists deleted keys; keys the
    request did not change are left as they are in the store, so a concurrent request's
    changes to other keys survive. ``expires_at`` and ``now`` are the record's deadline and
    access time; ``slide`` says whether the deadline moved (writes slide it in the same steps
    as reads, a tenth of the idle timeout, so a store with native TTLs need not renew them on
    every write). ``base_fields`` and ``base_version`` are the record as loaded, for stores
    that merge optimistically.
    """

    method: ClassVar[str] = "update"
    changes: Mapping[str, str]
    removed: tuple[str, ...]
    user_id: str | None
    set_user: bool
    now: float
    expires_at: float
    base_fields: Mapping[str, str]
    base_version: int
    absolute: float
    slide: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Touch(Op):
    """Slide the expiry of a live record without changing its data; False if it is gone."""

    method: ClassVar[str] = "touch"
    now: float
    expires_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Delete(Op):
    method: ClassVar[str] = "delete"


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteUser(Op):
    """Destroy every session bound to the user id in ``key``; return how many."""

    method: ClassVar[str] = "delete_user"


@dataclasses.dataclass(frozen=True, slots=True)
class On:
    """Perform ``op`` on ``store`` instead of the engine's own store (fallback, drain,
    revocation and migration stores)."""

    store: Store
    op: Op


#: What engine and backend steps yield: an operation on the engine's store, or ``On`` another.
Request = Op | On


class Store:
    """Base class of the stores. Subclasses implement one method per operation."""

    #: Sessions in this store are reachable from every instance (Redis, SQL), not only this one.
    shared: ClassVar[bool] = True
    #: ``Load`` also slides the expiry (free for this store). When false, the engine slides it
    #: with ``Touch`` (or within ``Update``) only once a tenth of the idle timeout has passed.
    slides_on_load: ClassVar[bool] = False
    #: A display name with no credentials, for logs, errors and status pages.
    name: str = "store"

    def execute(self, op: Op) -> Any:
        return getattr(self, op.method)(op)

    async def aexecute(self, op: Op) -> Any:
        return getattr(self, op.method)(op)

    # --- whole-store tools (``sessionkit export/import/migrate/stats``), sync only ---------
    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        """Every record (expired ones included), a batch at a time, in no particular order."""
        yield from ()
        raise ConfigError(f"{self.name} cannot list its sessions")

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> int:
        """Write records whose key is not taken yet (so a copy can run again safely);
        return how many were written."""
        return sum(bool(self.execute(Create(key, record, absolute, if_absent=True)))
                   for key, record in items)

    def delete_user_sessions(self, user_id: str) -> int:
        """Log a user out everywhere: destroy every session bound to ``user_id``."""
        result: int = self.execute(DeleteUser(user_id))
        return result

    async def adelete_user_sessions(self, user_id: str) -> int:
        result: int = await self.aexecute(DeleteUser(user_id))
        return result

    def close(self) -> None:
        """Release connections (sync side)."""

    async def aclose(self) -> None:
        """Release connections (async side)."""


def url_options(url: str, parsers: Mapping[str, Any]) -> dict[str, Any]:
    """Query options of a store URL, each run through its parser; unknown ones are an error."""
    from urllib.parse import parse_qsl, urlsplit

    from ..errors import ConfigError

    query = urlsplit(url).query
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        parser = parsers.get(name)
        if parser is None:
            valid = ", ".join(sorted(parsers)) or "none"
            raise ConfigError(f"unknown option {name!r} in store URL; valid options: {valid}")
        try:
            options[name] = parser(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"store URL option {name}={raw!r} is invalid: {exc}") from None
    return options


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value
