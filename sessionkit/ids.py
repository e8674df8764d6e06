"""Session ids: HMAC-tagged random tokens, and the store keys derived from them.

A session id is 32 random bytes plus a 16-byte tag, base64url (64 characters, no ``.``).
One HMAC of the random part gives 32 bytes: the first half is the tag, the second half the
store key. The tag lets a forged or guessed id be rejected without touching the store, and
tells which of the configured secrets issued the id, so secrets rotate without extra store
lookups. Stores only ever see the second half, which the cookie does not contain and which
cannot be computed without the secret: a dump of a store holds no usable cookie, and write
access to a store is not enough to mint one.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Sequence

TOKEN_LENGTH = 64
_RANDOM_BYTES = 32
_TAG_BYTES = 16
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{64}")


def derive(secret: bytes, purpose: bytes) -> bytes:
    """A key for one purpose, from one configured secret."""
    return hmac.digest(secret, b"sessionkit/v1 " + purpose, "sha256")
class SessionIds:
    """Issues and verifies session ids and maps them to store keys, for one list of secrets."""

    __slots__ = ("_derive_keys", "_id_keys", "_log_key")

    def __init__(self, secret_keys: Sequence[bytes]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        self._id_keys = [derive(s, b"session-id") for s in secret_keys]
        self._derive_keys = [derive(s, b"derived-id") for s in secret_keys]
        self._log_key = derive(secret_keys[0], b"log-id")

    def new(self) -> tuple[str, str]:
        """A fresh ``(token, store_key)`` under the current secret."""
        raw = secrets.token_bytes(_RANDOM_BYTES)
        digest = hmac.digest(self._id_keys[0], raw, "sha256")
        token = base64.urlsafe_b64encode(raw + digest[:_TAG_BYTES]).decode("ascii")
        return token, _store_key(digest)

    def derived(self, name: bytes) -> list[tuple[str, str]]:
        """The ``(token, store_key)`` of the session another system calls ``name`` (a peer
        library's session id), under each secret, current first. The same on every instance
        and request, so that concurrent requests importing one such session meet at one key;
        only the secret's holder can compute it, and its token verifies like any other."""
        found = []
        for derive_key, id_key in zip(self._derive_keys, self._id_keys, strict=True):
            raw = hmac.digest(derive_key, name, "sha256")
            digest = hmac.digest(id_key, raw, "sha256")
            token = base64.urlsafe_b64encode(raw + digest[:_TAG_BYTES]).decode("ascii")
            found.append((token, _store_key(digest)))
        return found

    def verify(self, token: str) -> tuple[str, int] | None:
        """``(store_key, generation)`` for an authentic token, else None.

        ``generation`` is the index of the secret that issued it: 0 is current, more means
        the session should move to the current secret.
        """
        if len(token) != TOKEN_LENGTH or not _TOKEN_RE.fullmatch(token):
            return None
        blob = base64.urlsafe_b64decode(token)
        raw, tag = blob[:_RANDOM_BYTES], blob[_RANDOM_BYTES:]
        for generation, key in enumerate(self._id_keys):
            digest = hmac.digest(key, raw, "sha256")
            if hmac.compare_digest(digest[:_TAG_BYTES], tag):
                return _store_key(digest), generation
        return None

    def log_id(self, token: str) -> str:
        """A short keyed hash of a token for logs and telemetry: correlates, never authenticates."""
        digest = hmac.digest(self._log_key, token.encode("ascii", "replace"), "sha256")
        return digest[:8].hex()


def _store_key(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest[_TAG_BYTES:]).rstrip(b"=").decode("ascii")
