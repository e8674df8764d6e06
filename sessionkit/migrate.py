"""Importing the sessions of a framework's own signed cookie (``migrate_from="flask-cookie"``
or ``"starlette-cookie"``), so that switching an app to sessionkit logs nobody out.

The old cookie is verified exactly as the framework did (itsdangerous, the app's old secret,
the framework's salt, key derivation and maximum age); a tampered, expired or foreign cookie is
ignored. The data becomes a new sessionkit session, saved by the response, whose cookie
replaces the old one (or, under another name, the old one is deleted).

An import happens once per old cookie: a keyed hash of the imported cookie is remembered in
the session store until that cookie would have expired anyway, so replaying it after a logout
(or a log-out-everywhere) brings nothing back. The parallel first requests of one browser all
carry the old cookie: for ``GRACE_SECONDS`` after the first import they may import it too.
``migrate_hook(session)`` lets the app bind the user as it imports (``session.user_id = ...``),
so that a log-out-everywhere reaches imported sessions as well.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Callable, Generator, Sequence
from typing import Any

from .codecs import encode_value
from .config import SessionConfig
from .errors import ConfigError
from .ids import derive
from .stores.base import Create, Load, On, Record, Store
from .stores.memory import MemoryStore

logger = logging.getLogger("sessionkit")

#: Reads an old cookie value: the session's data, or None if it is not a valid old cookie.
Reader = Callable[[str], dict[str, Any] | None]
Steps = Generator[On, Any, Any]

FLASK_DEFAULT_MAX_AGE = 31 * 86400  # Flask's PERMANENT_SESSION_LIFETIME default
STARLETTE_DEFAULT_MAX_AGE = 14 * 86400  # Starlette SessionMiddleware's max_age default
_FLASK_INTERNAL = frozenset({"_permanent"})
#: How long after an old cookie was imported the same cookie may be imported again (the
#: parallel first requests of one browser).
GRACE_SECONDS = 10.0
#: Old cookies looked at per request at most.
_MAX_CANDIDATES = 3


class CookieImport:
    """Imports the session an old framework cookie carries, once."""

    def __init__(self, read: Reader, markers: Store, marker_key: bytes, window: float) -> None:
        self.read = read
        self.markers = markers
        self._marker_key = marker_key
        self.window = window

    def lookup(self, candidates: Sequence[str], now: float) -> Steps:
        """The data of the first valid old cookie not imported before (grace aside)."""
        for value in candidates[:_MAX_CANDIDATES]:
            data = self.read(value)
            if data is None:
                continue
            key = self._marker(value)
            marker = Record({}, now, now + self.window, now, None, 1)
            first = yield On(self.markers, Create(key, marker, self.window, if_absent=True))
            if not first:
                seen: Record | None = yield On(
                    self.markers, Load(key, now, self.window, self.window))
                if seen is not None and seen.expires_at > now and (
                        now - seen.created_at > GRACE_SECONDS):
                    logger.info("sessionkit: an old session cookie that was imported before "
                                "came again; not imported twice")
                    continue
            return data
        return None

    def _marker(self, value: str) -> str:
        digest = hmac.digest(self._marker_key, value.encode("utf-8", "replace"), "sha256")
        return "m." + base64.urlsafe_b64encode(digest[:30]).decode("ascii")


def importer_for(config: SessionConfig, store: Store) -> CookieImport | None:
    """The importer ``migrate_from`` asks for, remembering imports in ``store`` (a process
    memory when the sessions live in no store: ``jwt://`` without a revocation store)."""
    source = config.migrate_from
    if source not in ("flask-cookie", "starlette-cookie"):
        return None
    secrets = _secrets(config.migrate_secret_key)
    if not secrets:
        raise ConfigError(
            f"migrate_from={source!r} needs migrate_secret_key: the secret the app signed its "
            f"old cookies with (Flask's SECRET_KEY, Starlette's SessionMiddleware secret_key)"
        )
    max_age: float | None = config.migrate_max_age  # type: ignore[assignment]  # normalized
    if source == "flask-cookie":
        window = int(max_age or FLASK_DEFAULT_MAX_AGE)
        read = flask_importer(secrets, window)
    else:
        window = int(max_age or STARLETTE_DEFAULT_MAX_AGE)
        read = starlette_importer(secrets, window)
    if config.scheme == "jwt" and config.revocation_store is None:
        store = MemoryStore()
    root = config.secret_keys[0] if config.secret_keys else _as_bytes(secrets[0])
    return CookieImport(read, store, derive(root, b"imported-cookie"), float(window))


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _secrets(value: object) -> list[str | bytes]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    if isinstance(value, Sequence):
        return [v for v in value if isinstance(v, str | bytes)]
    raise ConfigError("migrate_secret_key must be a string or a list of strings")


def flask_importer(secrets: list[str | bytes], max_age: int) -> Reader:
    """Flask's ``SecureCookieSessionInterface``: its serializer, salt and key derivation."""
    try:
        from flask.sessions import SecureCookieSessionInterface
        from itsdangerous import BadSignature, URLSafeTimedSerializer
    except ImportError:
        raise ConfigError("migrate_from='flask-cookie' needs Flask installed") from None
    interface = SecureCookieSessionInterface()
    keys: Any = list(reversed(secrets))  # itsdangerous signs with the last; all verify
    serializer = URLSafeTimedSerializer(
        keys,
        salt=interface.salt,
        serializer=interface.serializer,
        signer_kwargs={"key_derivation": interface.key_derivation,
                       "digest_method": interface.digest_method},
    )

    def read(value: str) -> dict[str, Any] | None:
        try:
            data = serializer.loads(value, max_age=max_age)
        except (BadSignature, ValueError, TypeError, KeyError, UnicodeError, RecursionError):
            return None
        return _json_only(data, _FLASK_INTERNAL)

    return read


def starlette_importer(secrets: list[str | bytes], max_age: int) -> Reader:
    """Starlette's ``SessionMiddleware``: base64 JSON signed by an itsdangerous
    ``TimestampSigner`` keyed with ``str(secret_key)``."""
    from itsdangerous import BadSignature, TimestampSigner

    signers = [TimestampSigner(s.decode() if isinstance(s, bytes) else s) for s in secrets]

    def read(value: str) -> dict[str, Any] | None:
        for signer in signers:
            try:
                data = json.loads(base64.b64decode(signer.unsign(value.encode(),
                                                                 max_age=max_age)))
            except (BadSignature, ValueError, TypeError, UnicodeError, RecursionError):
                continue
            return _json_only(data, frozenset())
        return None

    return read


def _json_only(data: object, internal: frozenset[str]) -> dict[str, Any] | None:
    """The keys sessionkit can keep (JSON values); what cannot be kept is logged, by name."""
    if not isinstance(data, dict):
        return None
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or key in internal:
            continue
        try:
            encode_value(key, value)
        except TypeError:
            logger.warning("sessionkit: imported session key %r is not JSON; dropped", key)
            continue
        kept[key] = value
    return kept
