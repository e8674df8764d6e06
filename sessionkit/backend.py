"""How a session travels between requests. The engine holds the policy and asks a backend
only the questions whose answers differ: what a cookie value refers to, and how to write,
re-issue or destroy a session.

``ServerSide`` (``sessionkit.serverside``): the cookie carries an id, a store keeps the data.
``JwtBackend`` (``sessionkit.client.jwt``): the cookie *is* the session, a signed token.

Every method is a sans-I/O generator: it yields store operations (``stores.base``) for the
engine's runner to perform on ``io_store`` and receives their results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeAlias, TypeVar

from .session import SessionState
from .stores.base import Record, Request, Store

T = TypeVar("T")
Steps: TypeAlias = Generator[Request, Any, T]


@dataclasses.dataclass(slots=True)
class Found:
    """A cookie value that refers to a stored or carried session."""

    record: Record
    token: str  #: the session's id (``Session.id``)
    key: str  #: what ``destroy`` takes
    route: str | None  #: the instance the cookie names, if any
    generation: int  #: index of the secret that issued it (0: current)
    #: The cookie should be issued again naming this instance (the session moved here).
    reroute: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Miss:
    """No session: ``reason`` is "invalid" (malformed or unauthentic: no I/O was done),
    "not_found", "affinity_miss" (the cookie names another instance and this store is not
    shared) or "new" (no cookie); ``route`` is the instance the cookie named."""

    reason: str
    route: str | None = None


Lookup: TypeAlias = Found | Miss


class Backend:
    """What the engine needs from a way of keeping sessions."""

    #: Operations are performed on this store (the session store, or a revocation list).
    io_store: Store
    #: What ``SessionEngine.store`` exposes to the app (``delete_user_sessions``).
    public_store: Store
    #: Loading also slides the expiry, for free: the engine never asks for ``touch``.
    slides_on_load: bool = False

    def lookup(self, value: str, now: float) -> Steps[Lookup]:
        raise NotImplementedError

    #: ``hit_now(value, now)``: a lookup answered on the spot when it needs no I/O (a session
    #: in this process's memory, a near-cache copy), else None, and then ``lookup`` decides.
    #: None (the default): every lookup takes the steps. A backend that offers it makes sure
    #: that what it did (a hit counted, say) is not done again by the steps: the engine hands
    #: them any answer it gave.
    hit_now: Callable[[str, float], Lookup | None] | None = None
    #: ``hit_now`` answers every lookup (this process's memory, nowhere else to look).
    inline: bool = False

    def miss(self, route: str | None) -> Miss:
        """How to classify a session found expired (or gone) under ``route``."""
        return Miss("not_found", route)

    def create(self, record: Record) -> Steps[tuple[str, str, str]]:
        """Save a whole new session; return ``(cookie value, token, key)``."""
        raise NotImplementedError

    def update(
        self, state: SessionState, changes: Mapping[str, str], removed: tuple[str, ...],
        record: Record,
    ) -> Steps[str | None]:
        """Save what changed (``record`` is the session after the change); return the cookie
        value to send, or None when nothing was saved (the session was destroyed meanwhile:
        a write never names a dead session)."""
        raise NotImplementedError

    def touch(self, state: SessionState, record: Record) -> Steps[str | None]:
        """Slide the expiry to ``record.expires_at``; return a new cookie value or None."""
        raise NotImplementedError

    def destroy(self, key: str, until: float) -> Steps[None]:
        """Make the session ``key`` unusable (it would have expired at ``until``)."""
        raise NotImplementedError

    def user_records(self, user_id: str, now: float) -> Steps[list[tuple[str, Record]]]:
        """``(key, record)`` of the sessions bound to ``user_id`` that are live at ``now``
        as far as the store knows (``sessionkit.devices`` applies the session's own limits)."""
        raise NotImplementedError

    def revoke(self, key: str, record: Record) -> Steps[None]:
        """End one of a user's sessions, as listed by ``user_records``."""
        yield from self.destroy(key, record.expires_at)

    def check_user_listing(self) -> None:
        """Raise ``ConfigError`` if users' sessions cannot be listed in this mode."""

    def cookie_value(self, state: SessionState, record: Record) -> str:
        """The cookie value of a saved session, naming this instance."""
        raise NotImplementedError

    def log_id(self, token: str) -> str:
        """A short keyed hash of a session id, for logs."""
        raise NotImplementedError

    def rekey(self, secret_keys: tuple[bytes, ...]) -> None:
        """Issue and verify with these secrets from now on (current first)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the backend runs in the background (hybrid mode's invalidations)."""
