"""Moving to sessionkit from the server-side session libraries it replaces, logging nobody out:
Flask-Session 0.8 (Redis, SQLAlchemy, filesystem/cachelib) and starsessions 2.x (RedisStore).

``migrate_from="<peer>+<store URL>"`` names the peer's store, e.g.
``flask-session+redis://host:6379/0?key_prefix=session:``; the peer's cookie is read under
``migrate_cookie_name`` (default ``session``) and, when it is signed, verified with
``migrate_secret_key``. A request carrying a valid peer cookie gets the peer's session, moved
once into sessionkit's store (``importer``); ``sessionkit migrate --from <peer URL>`` copies
the rest in bulk (``rekeyed``). Nothing is ever unpickled, and nothing but the deletion of a
moved session is ever written to the peer's store.

This module imports no driver: a source's module is loaded when its URL is opened.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..stores.base import Op, R, Record, Store

if TYPE_CHECKING:
    from ..config import SessionConfig
    from ..ids import SessionIds
    from .base import PeerSource
    from .importer import Peer, PeerImporter

__all__ = ["PEERS", "Rekeyed", "for_copy", "importer_for", "is_peer_url", "open_peer",
           "open_source", "signs_with_flask_secret"]

#: The peer libraries, by the name their URLs start with.
PEERS = ("flask-session", "starsessions")


def is_peer_url(url: object) -> bool:
    """Whether ``url`` names a peer library's store (``flask-session+``/``starsessions+``...)."""
    if not isinstance(url, str) or "://" not in url:
        return False
    return url.split("://", 1)[0].lower().partition("+")[0] in PEERS


def signs_with_flask_secret(url: object) -> bool:
    """Whether the peer's cookies may be signed with the Flask app's SECRET_KEY."""
    return is_peer_url(url) and str(url).lower().startswith("flask-session+")


def open_source(url: str) -> PeerSource:
    """The peer store a URL names (for the bulk copy and ``stats``)."""
    return open_peer(url, ())[0].source


def for_copy(url: str, secret_keys: Sequence[bytes]) -> Rekeyed:
    """The peer store a URL names, listing its sessions under the keys sessionkit gives them
    with these secrets (the bulk copy's source)."""
    from ..ids import SessionIds

    kind = url.split("://", 1)[0].lower().partition("+")[0]
    return Rekeyed(open_source(url), kind, SessionIds(secret_keys))


def open_peer(url: str, secrets: Sequence[str | bytes]) -> tuple[Peer, bool]:
    """The peer a URL names, with its cookie reader keyed with ``secrets``; and whether its
    cookies are signed."""
    from .importer import Peer

    scheme = url.split("://", 1)[0].lower()
    kind = scheme.partition("+")[0]
    if "+" not in scheme:
        raise ConfigError(f"{kind}:// names no store: give the one {kind} kept its sessions in, "
                          f"e.g. {kind}+redis://localhost:6379/0")
    try:
        if kind == "flask-session":
            from . import flask_session

            source, signed = flask_session.open_source(url)
            reader = flask_session.cookie_reader(signed, secrets) if (
                secrets or not signed) else _no_cookie
            return Peer(kind, source, reader), signed
        from . import starsessions

        return Peer(kind, starsessions.open_source(url), starsessions.cookie_reader()), False
    except ModuleNotFoundError as exc:
        driver = (exc.name or "").split(".")[0]
        if driver not in ("redis", "sqlalchemy"):
            raise
        extra = "redis" if driver == "redis" else "sql"
        raise ConfigError(f"reading {kind} sessions from this store needs the {driver!r} "
                          f"package: pip install 'sessionkit[{extra}]'") from None


def _no_cookie(value: str) -> None:
    return None


def importer_for(config: SessionConfig, ids: SessionIds | None, instance_id: str
                 ) -> PeerImporter | None:
    """The read-through ``config.migrate_from`` asks for, if it names a peer's store."""
    if not is_peer_url(config.migrate_from):
        return None
    assert config.migrate_from is not None
    from ..migrate import _secrets
    from .importer import PeerImporter

    if ids is None:
        raise ConfigError("migrate_from=<peer store URL> moves server-side sessions, which "
                          "jwt:// cannot hold; use a server-side store")
    secrets = _secrets(config.migrate_secret_key)
    peer, signed = open_peer(config.migrate_from, secrets)
    if signed and not secrets:
        peer.source.close()
        raise ConfigError(
            "migrate_from=flask-session+...?use_signer=true needs migrate_secret_key: the "
            "SECRET_KEY the Flask app signed its session cookies with (a Flask app's own "
            "SECRET_KEY is used when SessionKit runs in it)"
        )
    max_age: Any = config.migrate_max_age  # normalized to seconds by SessionConfig
    return PeerImporter(peer, ids, idle=config.idle_seconds, absolute=config.absolute_seconds,
                        max_age=None if max_age is None else float(max_age),
                        instance_id=instance_id)


class Rekeyed(Store):
    """A peer store's sessions under the keys sessionkit gives them (the bulk copy's source):
    the keys the read-through looks at first for a peer cookie."""

    def __init__(self, source: PeerSource, kind: str, ids: SessionIds) -> None:
        self.source = source
        self.kind = kind
        self.name = source.name
        self._ids = ids

    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        from .importer import derivation_name

        for records in self.source.iter_records(batch):
            yield [(self._ids.derived(derivation_name(self.kind, record_id))[0][1], record)
                   for record_id, record in records]

    def execute(self, op: Op[R]) -> R:
        raise ConfigError(f"{self.name} is listed for a copy, not operated on")

    async def aexecute(self, op: Op[R]) -> R:
        return self.execute(op)

    def close(self) -> None:
        self.source.close()
