"""Encrypted client-side sessions: ``jwt://?encrypted=true`` — a cookie the client cannot read.

The session travels as a JWT in the JWE compact form (RFC 7516, RFC 7519 section 11.2) with
``"alg":"A256KW","enc":"A256GCM"``, built with the ``cryptography`` package only::

    header . wrapped key . IV . ciphertext . tag      (each BASE64URL, no padding)

* **Authenticated encryption.** AES-256-GCM hides the claims (the data, the user id, the
  session's facts) and authenticates them together with the header: a token changed in any
  byte, cut short, or made under another key is refused.
* **No nonce is ever reused, by construction.** Each token gets a fresh random 256-bit content
  key, wrapped (AES key wrap, RFC 3394) under the key-encryption key: a content key encrypts
  exactly one plaintext. (Random 96-bit IVs under one long-lived key would be safe for about
  2**32 tokens per key, a count a busy site reaches; here the limit does not exist.)
* **Keys rotate like the signed mode's.** The key-encryption key and the ``kid`` are derived
  from each ``secret_key`` (for this purpose only): the first encrypts, every one decrypts, a
  token under an older one is re-issued under the first.
* **The header is the associated data, and fixed.** A token's header must be, byte for byte,
  one this app writes (one per key): no ``alg``/``enc`` confusion, no ``dir`` or ``none``, no
  compression (``zip`` would leak secrets through the length of data next to attacker-chosen
  data, as in CRIME), and no downgrade to a signed token, which is not even the same shape.

Everything around the token — claims, expiry, revocation, the 4 KB guard — is the signed
mode's (``sessionkit.client.jwt``): only the sealing differs.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from collections.abc import Sequence

from .._extras import missing_extra

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "jwt", "sessionkit.client.jwe") from None

from ..errors import ConfigError

ALGORITHM = "A256KW"
ENCRYPTION = "A256GCM"
_CEK_BYTES = 32
_WRAPPED_BYTES = _CEK_BYTES + 8  # RFC 3394: one more 64-bit block
_IV_BYTES = 12
_TAG_BYTES = 16
_COMPACT_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+){4}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes | None:
    """base64url without padding, canonical only (one spelling per byte string)."""
    if len(segment) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return data if _b64(data) == segment else None


class EncryptedTokens:
    """Seals claims into JWE compact tokens and opens them, for a list of secrets."""

    def __init__(self, secret_keys: Sequence[bytes]) -> None:
        if not secret_keys:
            raise ConfigError(
                "jwt://?encrypted=true needs secret_key (at least 32 bytes; a list rotates "
                "keys): the encryption keys are derived from it")
        #: header segment -> (kid, key-encryption key); the first secret's seals.
        self._by_header: dict[str, tuple[str, bytes]] = {}
        for secret in secret_keys:
            kek = hmac.digest(secret, b"sessionkit/v1 jwe-kek", "sha256")
            kid = hmac.digest(secret, b"sessionkit/v1 jwe-kid", "sha256")[:6].hex()
            header = json.dumps({"alg": ALGORITHM, "enc": ENCRYPTION, "kid": kid, "typ": "JWT"},
                                separators=(",", ":"))
            self._by_header.setdefault(_b64(header.encode()), (kid, kek))
        self._header, (self.kid, self._kek) = next(iter(self._by_header.items()))

    def seal(self, claims: bytes) -> str:
        """A token holding ``claims`` (JSON bytes), under the current key."""
        cek = secrets.token_bytes(_CEK_BYTES)
        iv = secrets.token_bytes(_IV_BYTES)
        sealed = AESGCM(cek).encrypt(iv, claims, self._header.encode("ascii"))
        return ".".join((self._header, _b64(aes_key_wrap(self._kek, cek)), _b64(iv),
                         _b64(sealed[:-_TAG_BYTES]), _b64(sealed[-_TAG_BYTES:])))

    def open(self, value: str) -> tuple[bytes, str] | None:
        """``(claims, kid)`` of an authentic token of ours; None for anything else."""
        if not _COMPACT_RE.fullmatch(value):
            return None
        header, wrapped_b64, iv_b64, ciphertext_b64, tag_b64 = value.split(".")
        key = self._by_header.get(header)
        if key is None:  # not a header this app writes: another alg, enc, kid, zip...
            return None
        kid, kek = key
        wrapped, iv = _b64decode(wrapped_b64), _b64decode(iv_b64)
        ciphertext, tag = _b64decode(ciphertext_b64), _b64decode(tag_b64)
        if (wrapped is None or iv is None or ciphertext is None or tag is None
                or len(wrapped) != _WRAPPED_BYTES or len(iv) != _IV_BYTES
                or len(tag) != _TAG_BYTES):
            return None
        try:
            cek = aes_key_unwrap(kek, wrapped)
            claims = AESGCM(cek).decrypt(iv, ciphertext + tag, header.encode("ascii"))
        except (InvalidUnwrap, InvalidTag, ValueError):
            return None
        return claims, kid


__all__ = ["ALGORITHM", "ENCRYPTION", "EncryptedTokens"]
