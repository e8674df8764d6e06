"""Importing the sessions of a framework's own signed cookie (``migrate_from="flask-cookie"``
or ``"starlette-cookie"``), so that switching an app to sessionkit logs nobody out.

The old cookie is verified exactly as the framework did (itsdangerous, the app's old secret,
the framework's salt, key derivation and maximum age); a tampered, expired or foreign cookie is
ignored. The data becomes a new sessionkit session, saved by the response, whose cookie
replaces the old one (or, under another name, the old one is deleted).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .codecs import encode_value
from .config import SessionConfig
from .errors import ConfigError

logger = logging.getLogger("sessionkit")

#: Reads an old cookie value: the session's data, or None if it is not a valid old cookie.
Importer = Callable[[str], dict[str, Any] | None]

FLASK_DEFAULT_MAX_AGE = 31 * 86400  # Flask's PERMANENT_SESSION_LIFETIME default
STARLETTE_DEFAULT_MAX_AGE = 14 * 86400  # Starlette SessionMiddleware's max_age default
_FLASK_INTERNAL = frozenset({"_permanent"})


def importer_for(config: SessionConfig) -> Importer | None:
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
        return flask_importer(secrets, int(max_age or FLASK_DEFAULT_MAX_AGE))
    return starlette_importer(secrets, int(max_age or STARLETTE_DEFAULT_MAX_AGE))


def _secrets(value: object) -> list[str | bytes]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    if isinstance(value, Sequence):
        return [v for v in value if isinstance(v, str | bytes)]
    raise ConfigError("migrate_secret_key must be a string or a list of strings")


def flask_importer(secrets: list[str | bytes], max_age: int) -> Importer:
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


def starlette_importer(secrets: list[str | bytes], max_age: int) -> Importer:
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
