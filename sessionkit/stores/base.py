"""The store contract: what a keeper of session records must do, typed and explicit.

The engine never does I/O. It asks a store to perform *operations* (the ``Op`` subclasses
below, each typed with its result), through ``Store.execute`` on the sync (WSGI) side and
``Store.aexecute`` on the async (ASGI) side. A store therefore holds only I/O; every policy
(expiry, regeneration, change detection) lives once, in the engine.

Records keep each session value as its own JSON text, so a write can be a *delta* (the keys
this request changed) merged atomically into the stored record: two concurrent requests that
change different keys both persist. ``merge_fields`` is that rule, for every store.

Two ways to write a store (docs/writing-a-store.md):

* ``BlockingStore``: one plain method per operation. Its ``aexecute`` runs them on a worker
  thread so that an event loop never blocks, unless the store declares
  ``Capabilities(nonblocking=True)`` (it never waits on I/O, like ``memory://``).
* ``CommandStore``: each operation is a generator that yields driver commands and receives
  their replies (sans-I/O); only ``send`` and ``asend`` touch the driver. One body of logic
  then serves both faces (``redis://``, SQL).

Duties every store carries, whatever its kind (``sessionkit.testing`` checks each):

* ``Load`` returns the record or None; it may return an expired record (the engine judges
  expiry against its own clock and deletes it); a store that ``slides_on_load`` also slides
  the expiry in the same I/O.
* ``Create`` writes a whole record; with ``if_absent`` only if the key is free, atomically,
  and says whether it wrote.
* ``Update`` merges a delta atomically (no lost update of another request's keys) and never
  resurrects a record that was deleted or has expired: it returns False instead.
* ``Touch`` slides a live record's expiry, False if it is gone; ``Delete`` is idempotent;
  ``DeleteUser`` destroys every record bound to a user id and returns how many; ``ListUser``
  returns every live record bound to a user id, with its key.
* ``Record.meta`` (facts about the session: ``sessionkit.meta``) is kept as written by
  ``Create`` and by an ``Update`` whose ``meta`` is not None, and returned by every read.
* Records expire by themselves at ``expires_at`` at the latest (native TTLs, or ``gc``).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeAlias, TypeVar, cast

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..devices import Devices, UserSession

R = TypeVar("R")
C = TypeVar("C")


def deadline(created_at: float, now: float, idle: float, absolute: float) -> float:
    """When a session used at ``now`` expires: the earlier of the idle and absolute limits."""
    return min(now + idle, created_at + absolute)


def merge_fields(base: Mapping[str, str], changes: Mapping[str, str],
                 removed: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The fields after a delta: ``base`` with ``changes`` set and ``removed`` deleted. The
    one merge rule of every store (and of hybrid mode's copies)."""
    fields = {**base, **changes}
    for name in removed:
        fields.pop(name, None)
    return fields


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
    #: Facts about the session itself, not its data (``sessionkit.meta``: when its user was
    #: bound and last proved who they are, its own expiry, its description). Never changed in
    #: place: a change installs a new dict.
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a store can do, declared by the store (never guessed from its module or URL)."""

    #: Every instance reaches the same records (Redis, SQL), not only this process.
    shared: bool = True
    #: ``Load`` also slides the expiry for free. When false the engine slides it with
    #: ``Touch`` (or within ``Update``) only once a tenth of the idle timeout has passed.
    slides_on_load: bool = False
    #: Operations never wait on I/O (process memory): ``aexecute`` needs no worker thread.
    nonblocking: bool = False
    #: ``iter_records``/``put_records`` work (``sessionkit export/import/migrate/stats``).
    lists_records: bool = False


@dataclasses.dataclass(slots=True)
class Op(Generic[R]):
    """An operation on the record at ``key``; ``R`` is what performing it returns. Treated as
    immutable, though not frozen: a frozen dataclass sets each field through
    ``object.__setattr__``, and five of these are made for some requests."""

    method: ClassVar[str]
    key: str


@dataclasses.dataclass(slots=True)
class Load(Op["Record | None"]):
    """The record at ``key``, or None (see the module's duties)."""

    method: ClassVar[str] = "load"
    now: float
    idle: float
    absolute: float


@dataclasses.dataclass(slots=True)
class Create(Op[bool]):
    """Write a whole new record (new, regenerated or re-keyed sessions). ``absolute`` is the
    configured absolute timeout: no session outlives it, so indexes may expire after it.

    With ``if_absent`` the write happens only if no record exists at ``key`` (atomically), and
    the result says whether it did: two requests moving one session from an old store must not
    both write it, or the second would overwrite what the first request then saved."""

    method: ClassVar[str] = "create"
    record: Record
    absolute: float
    if_absent: bool = False


@dataclasses.dataclass(slots=True)
class Update(Op[int]):
    """Merge a delta into the live record atomically; return False if it no longer exists
    (destroyed by a concurrent logout, regenerate or expiry): a delta never resurrects it.

    Otherwise return True, or better, the record's ``version`` after the write (an ``int``,
    never a ``bool``) when the store keeps one that every ``Update`` bumps atomically with the
    delta: hybrid mode's near cache then knows whether its copy plus this delta is exactly
    what the store holds (version one above its copy's) or whether another instance wrote in
    between, and keeps its copy only in the first case.

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
    #: The record's new ``meta`` (None: unchanged).
    meta: Mapping[str, Any] | None = None


@dataclasses.dataclass(slots=True)
class Touch(Op[bool]):
    """Slide the expiry of a live record without changing its data; False if it is gone."""

    method: ClassVar[str] = "touch"
    now: float
    expires_at: float


@dataclasses.dataclass(slots=True)
class Delete(Op[None]):
    """Destroy the record at ``key`` (nothing if there is none)."""

    method: ClassVar[str] = "delete"


@dataclasses.dataclass(slots=True)
class DeleteUser(Op[int]):
    """Destroy every session bound to the user id in ``key``; return how many."""

    method: ClassVar[str] = "delete_user"


@dataclasses.dataclass(slots=True)
class ListUser(Op["list[tuple[str, Record]]"]):
    """Every record bound to the user id in ``key`` (compared exactly) that is live at
    ``now``, with its store key, in no particular order: a user's devices. It must reach the
    sessions bound by a later ``Update(set_user=True)`` and leave out those unbound since."""

    method: ClassVar[str] = "list_user"
    now: float


@dataclasses.dataclass(slots=True)
class On:
    """Perform ``op`` on ``store`` instead of the engine's own store (fallback, drain,
    revocation and migration stores)."""

    store: Store
    op: Op[Any]


#: What engine and backend steps yield: an operation on the engine's store, or ``On`` another.
Request: TypeAlias = Op[Any] | On


class Store(abc.ABC):
    """A keeper of session records: performs ``Op``s on the sync and the async side.

    Subclass ``BlockingStore`` or ``CommandStore`` rather than this class: they turn the
    operation methods into ``execute``/``aexecute``."""

    #: What this store can do. A subclass declares its own.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: A display name with no credentials, for logs, errors and status pages.
    name: str = "store"

    @property
    def shared(self) -> bool:
        return self.capabilities.shared

    @abc.abstractmethod
    def execute(self, op: Op[R]) -> R:
        """Perform ``op`` (sync side); raise ``StoreUnavailable`` when the store is down."""

    @abc.abstractmethod
    async def aexecute(self, op: Op[R]) -> R:
        """Perform ``op`` without blocking the event loop (async side)."""

    def invalidation_watcher(self, cache: Any, clock: Callable[[], float], idle: float,
                             absolute: float) -> Any:
        """A watcher that tells hybrid mode's near cache at once which records changed, or
        None when this store cannot push changes (copies then live ``near_cache_max_age``)."""
        return None

    # --- whole-store tools (``sessionkit export/import/migrate/stats``), sync only ---------
    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        """Every record (expired ones included), a batch at a time, in no particular order."""
        raise ConfigError(f"{self.name} cannot list its sessions")

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> int:
        """Write records whose key is not taken yet (so a copy can run again safely);
        return how many were written."""
        return sum(self.execute(Create(key, record, absolute, if_absent=True))
                   for key, record in items)

    def delete_user_sessions(self, user_id: str) -> int:
        """Log a user out everywhere: destroy every session bound to ``user_id``."""
        return self.execute(DeleteUser(user_id))

    async def adelete_user_sessions(self, user_id: str) -> int:
        return await self.aexecute(DeleteUser(user_id))

    # --- a user's devices (``sessionkit.devices``) -------------------------------------------
    #: Lists and revokes users' sessions: given to the store by the ``SessionEngine`` that
    #: serves sessions from it, which holds the key handles are made with and the clock.
    devices: Devices | None = None

    def user_sessions(self, user_id: str) -> list[UserSession]:
        """Each live session of ``user_id``, most recently seen first: an opaque handle (never
        the id or anything a cookie can be made from), when it was created and last seen,
        the instance that created it and the app's description of it."""
        return self._devices().user_sessions(user_id)

    async def auser_sessions(self, user_id: str) -> list[UserSession]:
        return await self._devices().auser_sessions(user_id)

    def revoke(self, user_id: str, handle: str) -> bool:
        """End the session of ``user_id`` that ``handle`` (from ``user_sessions``) names;
        False when that user has no such session (ended already, or not theirs)."""
        return self._devices().revoke(user_id, handle)

    async def arevoke(self, user_id: str, handle: str) -> bool:
        return await self._devices().arevoke(user_id, handle)

    def _devices(self) -> Devices:
        if self.devices is None:
            raise ConfigError(
                f"{self.name}: listing and revoking a user's sessions goes through the "
                f"SessionEngine that serves them (engine.store.user_sessions(...)): handles are "
                f"keyed with its secret_key")
        return self.devices

    def close(self) -> None:  # noqa: B027  (optional: most stores hold nothing to release)
        """Release connections (sync side)."""

    async def aclose(self) -> None:  # noqa: B027
        """Release connections (async side)."""


class BlockingStore(Store):
    """A store written as one plain method per operation."""

    @abc.abstractmethod
    def load(self, op: Load) -> Record | None: ...

    @abc.abstractmethod
    def create(self, op: Create) -> bool: ...

    @abc.abstractmethod
    def update(self, op: Update) -> int: ...

    @abc.abstractmethod
    def touch(self, op: Touch) -> bool: ...

    @abc.abstractmethod
    def delete(self, op: Delete) -> None: ...

    @abc.abstractmethod
    def delete_user(self, op: DeleteUser) -> int: ...

    @abc.abstractmethod
    def list_user(self, op: ListUser) -> list[tuple[str, Record]]: ...

    def execute(self, op: Op[R]) -> R:
        return cast(R, getattr(self, op.method)(op))

    async def aexecute(self, op: Op[R]) -> R:
        if self.capabilities.nonblocking:
            return self.execute(op)
        return await asyncio.to_thread(self.execute, op)


#: What a ``CommandStore`` operation is: a generator yielding driver commands of type ``C``.
Steps: TypeAlias = Generator[C, Any, R]


class CommandStore(Store, Generic[C]):
    """A store whose operations yield driver commands (``C``) and receive their replies.

    ``run`` drives an operation's generator on the sync driver, ``arun`` on the async one
    (``sessionkit.sansio`` has the two runners; a store adds its connection handling and the
    translation of driver errors into ``StoreUnavailable``). The logic of every operation is
    written once."""

    @abc.abstractmethod
    def load(self, op: Load) -> Steps[C, Record | None]: ...

    @abc.abstractmethod
    def create(self, op: Create) -> Steps[C, bool]: ...

    @abc.abstractmethod
    def update(self, op: Update) -> Steps[C, int]: ...

    @abc.abstractmethod
    def touch(self, op: Touch) -> Steps[C, bool]: ...

    @abc.abstractmethod
    def delete(self, op: Delete) -> Steps[C, None]: ...

    @abc.abstractmethod
    def delete_user(self, op: DeleteUser) -> Steps[C, int]: ...

    @abc.abstractmethod
    def list_user(self, op: ListUser) -> Steps[C, list[tuple[str, Record]]]: ...

    @abc.abstractmethod
    def run(self, steps: Steps[C, R]) -> R:
        """Drive ``steps`` to its result on the sync driver."""

    @abc.abstractmethod
    async def arun(self, steps: Steps[C, R]) -> R:
        """Drive ``steps`` to its result on the async driver."""

    def steps(self, op: Op[R]) -> Steps[C, R]:
        """The generator that performs ``op``."""
        return cast(Steps[C, R], getattr(self, op.method)(op))

    def execute(self, op: Op[R]) -> R:
        return self.run(self.steps(op))

    async def aexecute(self, op: Op[R]) -> R:
        return await self.arun(self.steps(op))


def url_options(url: str, parsers: Mapping[str, Callable[[str], Any]]) -> dict[str, Any]:
    """Query options of a store URL, each run through its parser; unknown ones are an error."""
    from urllib.parse import parse_qsl, urlsplit

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


__all__ = [
    "BlockingStore", "Capabilities", "CommandStore", "Create", "Delete", "DeleteUser",
    "ListUser", "Load", "On", "Op", "Record", "Request", "Steps", "Store", "Touch", "Update",
    "deadline", "merge_fields", "url_options",
]
