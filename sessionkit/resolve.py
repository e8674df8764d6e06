"""Resolving a ``SessionConfig`` into the backend that keeps its sessions.

Which way sessions travel (server-side ids, signed tokens, a near cache in front of a shared
store) and which stores are involved (the session store, a fallback or migration source, a
revocation list) are decided here, once, at startup; the engine then only applies policy.
"""

from __future__ import annotations

import logging
import secrets

from . import peers
from .backend import Backend
from .config import SessionConfig
from .errors import ConfigError
from .ids import SessionIds
from .nearcache import NearBackend
from .serverside import ServerSide
from .stores import Store, open_store

logger = logging.getLogger("sessionkit")


def build_backend(config: SessionConfig, store: Store | None, instance_id: str) -> Backend:
    """The backend for ``config``; ``store`` is a ready store object that replaces the
    store URL (custom stores, a client the app built itself)."""
    if store is None and config.scheme == "jwt":
        return _client_side(config)
    if config.revocation_store is not None:  # e.g. left in the environment after a switch
        logger.warning(
            "sessionkit: revocation_store is ignored with %s://: server-side sessions are "
            "revoked by deleting them", config.scheme,
        )
    if store is None:
        assert isinstance(config.store, str)
        store = open_store(config.store)
    ids = SessionIds(config.secret_keys or development_key(config, store))
    secondaries = []
    if config.on_affinity_miss == "fallback" and config.fallback_store is not None:
        if store.shared:
            logger.warning("sessionkit: on_affinity_miss='fallback' is ignored with a "
                           "shared store: every instance already sees every session")
        else:
            secondaries.append(shared_store(config.fallback_store, "fallback_store"))
    if config.migrate_from is not None and "://" in config.migrate_from and (
            not peers.is_peer_url(config.migrate_from)):
        secondaries.append(open_store(config.migrate_from))
    idle, absolute = config.idle_seconds, config.absolute_seconds
    if config.near_cache:
        if not store.shared:
            raise ConfigError(f"near_cache=True needs a shared store (redis://, a SQL URL), "
                              f"not {store.name}")
        return NearBackend(store, ids, instance_id, idle, absolute, tuple(secondaries),
                           size=config.near_cache_size, max_age=config.near_cache_seconds,
                           clock=config.now)
    return ServerSide(store, ids, instance_id, idle, absolute, tuple(secondaries))


def _client_side(config: SessionConfig) -> Backend:
    try:
        from .client.jwt import JwtBackend
    except ModuleNotFoundError as exc:
        if exc.name not in ("jwt", "cryptography"):
            raise
        raise ConfigError("the jwt:// mode needs PyJWT: pip install 'sessionkit[jwt]'") from None
    if config.migrate_from is not None and "://" in config.migrate_from:
        raise ConfigError(
            "migrate_from=<store URL> reads server-side sessions, which jwt:// cannot hold; "
            "migrate to a server-side store, or import a framework cookie with "
            "migrate_from='flask-cookie' / 'starlette-cookie'"
        )
    revocation = open_store(config.revocation_store) if config.revocation_store else None
    return JwtBackend(config, revocation)


def development_key(config: SessionConfig, store: Store) -> tuple[bytes, ...]:
    """No secret_key: only a store private to this process can live with a random key."""
    if store.shared or config.drain_to or config.fallback_store:
        raise ConfigError(
            f"secret_key is required with the {config.scheme}:// store and with "
            f"drain_to/fallback_store: every instance must hash session ids the same way. "
            f"Set secret_key (or SESSIONKIT_SECRET_KEY) to the output of: "
            f"python -c \"import secrets; print(secrets.token_urlsafe(48))\""
        )
    logger.warning(
        "sessionkit: no secret_key configured; using a random key for this process only. "
        "Sessions end when the process restarts. Set secret_key (or SESSIONKIT_SECRET_KEY) "
        "in production."
    )
    return (secrets.token_bytes(32),)


def shared_store(url: str, setting: str) -> Store:
    """The store at ``url``, which must be one every instance reaches."""
    store = open_store(url)
    if not store.shared:
        raise ConfigError(f"{setting} must be a store every instance can reach (redis://, a SQL "
                          f"URL), not {store.name}")
    return store
