"""How values and ids are encoded: JSON for data (never pickle), HMAC-tagged random ids.

A session id is 32 random bytes plus a 16-byte HMAC tag, base64url (64 characters, no ``.``).
The tag lets a forged or guessed id be rejected without touching the store, and tells which
of the configured secrets issued the id, so secrets rotate without extra store lookups.
Stores never see the id: they get ``HMAC(store-key, id)``, so a dump of a store holds no
usable cookie and write access to a store is not enough to mint one.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

TOKEN_LENGTH = 64
_RANDOM_BYTES = 32
_TAG_BYTES = 16
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{64}")

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decoder = json.JSONDecoder()


def encode_value(key: str, value: Any) -> str:
    """The canonical JSON text of one session value; a clear ``TypeError`` names the key."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session[{key!r}] holds a value that is not JSON ({exc}); sessions store JSON "
            f"values only: str, int, float, bool, None, and lists and dicts of them with str keys"
        ) from None


def decode_value(text: str) -> Any:
    return _decoder.decode(text)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.digest(secret, b"sessionkit/v1 " + purpose, "sha256")


class SessionIds:
    """Issues and verifies session ids and maps them to store keys, for one list of secrets."""

    __slots__ = ("_log_key", "_store_keys", "_tag_keys")

    def __init__(self, secret_keys: Sequence[bytes]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        self._tag_keys = [_derive(s, b"id-tag") for s in secret_keys]
        self._store_keys = [_derive(s, b"store-key") for s in secret_keys]
        self._log_key = _derive(secret_keys[0], b"log-id")

    def new(self) -> tuple[str, str]:
        """A fresh ``(token, store_key)`` under the current secret."""
        raw = secrets.token_bytes(_RANDOM_BYTES)
        tag = hmac.digest(self._tag_keys[0], raw, "sha256")[:_TAG_BYTES]
        token = base64.urlsafe_b64encode(raw + tag).decode("ascii")
        return token, self._store_key(raw, 0)

    def verify(self, token: str) -> tuple[str, int] | None:
        """``(store_key, generation)`` for an authentic token, else None.

        ``generation`` is the index of the secret that issued it: 0 is current, more means
        the session should move to the current secret.
        """
        if len(token) != TOKEN_LENGTH or not _TOKEN_RE.fullmatch(token):
            return None
        blob = base64.urlsafe_b64decode(token)
        raw, tag = blob[:_RANDOM_BYTES], blob[_RANDOM_BYTES:]
        for generation, key in enumerate(self._tag_keys):
            expected = hmac.digest(key, raw, "sha256")[:_TAG_BYTES]
            if hmac.compare_digest(expected, tag):
                return self._store_key(raw, generation), generation
        return None

    def log_id(self, token: str) -> str:
        """A short keyed hash of a token for logs and telemetry: correlates, never authenticates."""
        digest = hmac.digest(self._log_key, token.encode("ascii", "replace"), "sha256")
        return digest[:8].hex()

    def _store_key(self, raw: bytes, generation: int) -> str:
        digest = hmac.digest(self._store_keys[generation], raw, "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
