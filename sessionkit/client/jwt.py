"""Client-side sessions: ``jwt://`` — the session *is* the cookie, a signed JWT (RFC 7519).

Claims: ``sid`` (a random id: the session's identity for events and revocation), ``iat`` and
``nbf`` (issued), ``exp`` (the earlier of the idle and absolute deadlines), ``ct`` (created:
the absolute timeout runs from it), ``uid`` (the bound user), ``iss``/``aud`` when configured,
and the data under ``d``. The token is re-issued when the session changes or once a tenth of
the idle timeout has passed, never on every response.

``jwt://?encrypted=true`` seals the same claims in an encrypted token instead (JWE, RFC 7516:
``sessionkit.client.jwe``), so the client cannot read its session; everything else here is
the same in both forms.

Following RFC 8725: verification pins the configured algorithm (never the token's ``alg``),
every token names its key (``kid``) and an unknown ``kid`` is rejected, HMAC keys are derived
from ``secret_key`` (at least 256 bits) and asymmetric keys come as PEM from the config. Keys
rotate like ``secret_key`` does: the first signs, all verify.

Without a ``revocation_store`` a token stays valid until its ``exp`` even after logout: the
cookie is deleted from the browser, but a copy taken earlier still works until then (at most
``idle_timeout``, never past ``absolute_timeout``). With one, ``invalidate()``, ``regenerate()``
and ``delete_user_sessions()`` take effect at once: a deny-list entry per ``sid`` until its
``exp``, and a per-user "not before" time that kills every session created earlier.

A user's devices (``sessionkit.devices``): tokens are not stored, so the revocation store also
learns of each token bound to a user — a small record per ``sid`` (its times, instance and
facts, no data), bound to the user in the store's user index, written when the user is bound
or its facts change and refreshed when the token's expiry slides, and removed when the token
is revoked. Listing a user's sessions reads that index; revoking one deny-lists its ``sid``.
So that those records expire with their tokens, a token's ``exp`` slides in the same steps as
a server-side session's (a tenth of the idle timeout), not on every write.

PyJWT checks the signature; the claims are checked here, against the engine's clock.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from .._extras import missing_extra

try:
    import jwt
    import jwt.algorithms
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "jwt", "sessionkit.client.jwt") from None

from ..backend import Backend, Found, Lookup, Miss, Steps
from ..codecs import json_text
from ..config import SessionConfig, parse_bool
from ..errors import ConfigError
from ..meta import BOUND
from ..meta import checked as checked_meta
from ..meta import encode as encode_meta
from ..session import SessionState
from ..stores.base import (
    Capabilities,
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    Op,
    R,
    Record,
    Store,
)
from .jwe import EncryptedTokens

logger = logging.getLogger("sessionkit")

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
#: A JWT cookie longer than this is certainly not ours: reject it before any parsing.
MAX_TOKEN_LENGTH = 4096
TOKEN_CACHE_SIZE = 4096
INVALID = Miss("invalid")
NOT_FOUND = Miss("not_found")  # revoked
NEEDS_REVOCATION = (
    "log out everywhere (and listing or revoking a user's sessions) needs "
    "revocation_store=<a shared store URL> in jwt:// mode: without one a copied token stays "
    "valid until it expires")


_NO_FACTS: dict[str, Any] = {}


class Token(NamedTuple):
    """What a verified token says (immutable: shared by every request that sends it)."""

    sid: str
    kid: str
    expires_at: float
    not_before: float
    issued_at: float
    created_at: float
    user_id: str | None
    fields: dict[str, str]
    #: When the user was bound (``ub``): a log-out-everywhere revokes tokens bound before it.
    bound_at: float | None = None
    #: The session's facts (``sessionkit.meta``): ``ub`` from its own claim, the rest from
    #: the ``m`` claim.
    meta: dict[str, Any] = _NO_FACTS
_ALLOWED_HEADER = frozenset({"alg", "kid", "typ"})
_COMPACT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class JwtOptions:
    """``jwt://?algorithm=HS256&issuer=...&audience=...&leeway=5``, or
    ``jwt://?encrypted=true&...`` for tokens the client cannot read."""

    def __init__(self, url: str) -> None:
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        unknown = set(query) - {"algorithm", "issuer", "audience", "leeway", "encrypted"}
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(sorted(unknown))} in jwt:// URL; valid: "
                f"algorithm, issuer, audience, leeway, encrypted"
            )
        self.encrypted = parse_bool(query.get("encrypted", "false"), "jwt:// option encrypted")
        if self.encrypted and "algorithm" in query:
            raise ConfigError(
                "jwt://?encrypted=true tokens are encrypted with A256KW and A256GCM under keys "
                "derived from secret_key; drop the algorithm option (it names signatures)")
        self.algorithm = query.get("algorithm", "HS256")
        if self.algorithm not in HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS:
            raise ConfigError(
                f"jwt algorithm {self.algorithm!r} is not supported; use one of "
                + ", ".join(HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS)
            )
        self.issuer = query.get("issuer") or None
        self.audience = query.get("audience") or None
        try:
            self.leeway = float(query.get("leeway", "0"))
        except ValueError:
            raise ConfigError("jwt:// leeway must be seconds, e.g. leeway=5") from None
        if not 0 <= self.leeway <= 300 or math.isnan(self.leeway):
            raise ConfigError("jwt:// leeway must be between 0 and 300 seconds")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    """base64url without padding; the alphabet was checked by ``_COMPACT_RE``."""
    if len(segment) % 4 == 1:
        raise ValueError("impossible base64 length")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class JwtKeys:
    """The signing key and every verifying key, by ``kid``."""

    def __init__(self, config: SessionConfig, algorithm: str) -> None:
        self.algorithm = algorithm
        #: PyJWT's implementation of the one algorithm this app accepts.
        self.alg: Any = jwt.algorithms.get_default_algorithms()[algorithm]
        self.verify: dict[str, Any] = {}
        self._load(config, algorithm)
        header = {"alg": algorithm, "kid": self.kid, "typ": "JWT"}
        self.header_b64 = _b64(json.dumps(header, separators=(",", ":")).encode())

    def _load(self, config: SessionConfig, algorithm: str) -> None:
        if algorithm in HMAC_ALGORITHMS:
            if not config.secret_keys:
                raise ConfigError(
                    "jwt:// with an HS algorithm needs secret_key (at least 32 bytes; a list "
                    "rotates keys): every instance must verify every other's tokens"
                )
            size = {"HS256": 32, "HS384": 48, "HS512": 64}[algorithm]  # RFC 7518 3.2
            for secret in config.secret_keys:
                key = hmac.digest(secret, b"sessionkit/v1 jwt-hmac", "sha512")[:size]
                kid = hmac.digest(secret, b"sessionkit/v1 jwt-kid", "sha256")[:6].hex()
                self.verify.setdefault(kid, key)
            self.kid = next(iter(self.verify))
            self.sign: Any = self.verify[self.kid]
            return
        if not config.jwt_private_key:
            raise ConfigError(
                f"jwt:// with {algorithm} needs jwt_private_key (PEM); older public keys go in "
                f"jwt_public_keys"
            )
        private = _load_pem(config.jwt_private_key, private=True, algorithm=algorithm)
        self.sign = private
        self.kid = _thumbprint(private.public_key())
        self.verify[self.kid] = private.public_key()
        for pem in config.jwt_public_keys or ():
            public = _load_pem(pem, private=False, algorithm=algorithm)
            self.verify.setdefault(_thumbprint(public), public)


def _load_pem(pem: str | bytes, *, private: bool, algorithm: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    data = pem.encode() if isinstance(pem, str) else pem
    what = "jwt_private_key" if private else "jwt_public_keys"
    try:
        key: Any = (serialization.load_pem_private_key(data, password=None) if private
                    else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: not a PEM {'private' if private else 'public'} key ({exc})"
                          ) from None
    expected: dict[str, tuple[type, ...]] = {
        "RS256": (rsa.RSAPrivateKey, rsa.RSAPublicKey),
        "ES256": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
        "EdDSA": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
    }
    if not isinstance(key, expected[algorithm]):
        raise ConfigError(f"{what}: the key does not match algorithm {algorithm}")
    if algorithm == "RS256" and getattr(key, "key_size", 0) < 2048:
        raise ConfigError(f"{what}: RSA keys must have at least 2048 bits")
    if algorithm == "ES256" and getattr(getattr(key, "curve", None), "name", "") != "secp256r1":
        raise ConfigError(f"{what}: ES256 needs a P-256 (secp256r1) key")
    return key


def _thumbprint(public: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:12]


class ClientSideStore(Store):
    """What ``SessionEngine.store`` is in client mode: log-out-everywhere goes to the
    revocation store as a per-user "not before" time (and the user's device records go)."""

    def __init__(self, backend: JwtBackend) -> None:
        self.backend = backend
        self.name = "jwt://"

    def execute(self, op: Op[R]) -> R:
        revocation = self.backend.io_store
        revocation.execute(self._translate(op))
        # How many tokens are out there is unknowable (the clients hold them): this counts
        # the ones the revocation store learnt of.
        return revocation.execute(op)

    async def aexecute(self, op: Op[R]) -> R:
        revocation = self.backend.io_store
        await revocation.aexecute(self._translate(op))
        return await revocation.aexecute(op)

    def _translate(self, op: Op[Any]) -> Op[bool]:
        if not isinstance(op, DeleteUser):
            raise TypeError("client-side sessions have no server-side records to operate on")
        return self.backend.not_before_op(op.key)


class _NoRevocation(Store):
    """Stands in when no revocation store is configured: nothing can be revoked."""

    name = "none"
    capabilities = Capabilities(nonblocking=True)

    def execute(self, op: Op[R]) -> R:
        raise ConfigError(NEEDS_REVOCATION)

    async def aexecute(self, op: Op[R]) -> R:
        return self.execute(op)


class JwtBackend(Backend):
    def __init__(self, config: SessionConfig, revocation: Store | None) -> None:
        self.options = JwtOptions(config.store if isinstance(config.store, str) else "jwt://")
        self.config = config
        self.keys = JwtKeys(config, self.options.algorithm)
        #: Seals tokens the client cannot read (``jwt://?encrypted=true``), else None: signed.
        self.encryption = (EncryptedTokens(config.secret_keys) if self.options.encrypted
                           else None)
        self.revocation = revocation
        self.io_store = revocation if revocation is not None else _NoRevocation()
        self.public_store = ClientSideStore(self)
        self.slides_on_load = False
        self._idle = config.idle_seconds
        self._absolute = config.absolute_seconds
        self._clock = config.now
        # Verifying a token depends on nothing but the token: remember the last few thousand,
        # so a browser sending the same cookie again costs a dictionary lookup. Tokens issued
        # here are remembered as they are signed: the next request brings them back.
        self._known = _KnownTokens(TOKEN_CACHE_SIZE)
        root = config.secret_keys[0] if config.secret_keys else _key_bytes(self.keys.sign)
        self._user_key = hmac.digest(root, b"sessionkit/v1 jwt-user", "sha256")
        #: What session handles are keyed with when there is no secret_key (asymmetric keys).
        self.handle_secrets = config.secret_keys or (root,)

    def rekey(self, secret_keys: tuple[bytes, ...]) -> None:
        """Sign and verify (or encrypt and decrypt) with other secrets from now on."""
        self.keys = JwtKeys(dataclasses.replace(self.config, secret_key=secret_keys),
                            self.options.algorithm)
        if self.encryption is not None:
            self.encryption = EncryptedTokens(secret_keys)
        self._known = _KnownTokens(TOKEN_CACHE_SIZE)

    @property
    def kid(self) -> str:
        """The key new tokens are issued under."""
        return self.encryption.kid if self.encryption is not None else self.keys.kid

    # --- reading ----------------------------------------------------------------------------
    def lookup(self, value: str, now: float) -> Steps[Lookup]:
        token = self._decode(value)
        if token is None:
            return INVALID
        leeway = self.options.leeway
        if token.expires_at + leeway <= now or token.not_before - leeway > now:
            return INVALID
        record = Record(token.fields, token.created_at, token.expires_at, token.issued_at,
                        token.user_id, 0, None, token.meta)
        if self.revocation is not None:
            denied: Record | None = yield Load(_deny_key(token.sid), now, self._idle,
                                               self._absolute)
            if denied is not None and denied.expires_at > now:
                return NOT_FOUND
            if record.user_id is not None:
                marker = yield Load(self._user_marker(record.user_id), now, self._idle,
                                    self._absolute)
                bound = token.bound_at if token.bound_at is not None else token.created_at
                if marker is not None and _not_before(marker) >= bound:
                    return NOT_FOUND
        return Found(record, token.sid, token.sid, None, 0 if token.kid == self.kid else 1)

    def _decode(self, value: str) -> Token | None:
        token: Token | None = self._known.get(value, _UNKNOWN)
        if token is _UNKNOWN:
            token = self._decode_uncached(value)
            self._known.put(value, token)
        return token

    def _decode_uncached(self, value: str) -> Token | None:
        """The token if it is authentic, well-formed and for us; None otherwise. Time is
        judged by the caller, so the answer depends only on the token and can be cached."""
        if len(value) > MAX_TOKEN_LENGTH:
            return None
        opened = self._verified(value) if self.encryption is None else self._decrypted(value)
        if opened is None:
            return None
        claims, kid = opened
        if not isinstance(claims, dict):
            return None
        return self._token(claims, kid)

    def _decrypted(self, value: str) -> tuple[Any, str] | None:
        """The claims of an encrypted token, and its key (``sessionkit.client.jwe``)."""
        assert self.encryption is not None
        opened = self.encryption.open(value)
        if opened is None:
            return None
        payload, kid = opened
        try:
            return json.loads(payload), kid
        except (ValueError, RecursionError):
            return None

    def _verified(self, value: str) -> tuple[Any, str] | None:
        """The claims of a signed token, and its key.

        The compact JWS form is parsed here, strictly (PyJWT's parser re-validates every
        character in Python and dominated the cost of a request); the signature is checked by
        PyJWT's algorithm for the one configured ``alg``."""
        if not _COMPACT_RE.fullmatch(value):
            return None
        header_b64, payload_b64, signature_b64 = value.split(".")
        try:
            header = json.loads(_b64decode(header_b64))
            if not isinstance(header, dict) or header.get("alg") != self.keys.algorithm:
                return None
            kid = header.get("kid")
            if set(header) - _ALLOWED_HEADER or header.get("typ", "JWT") != "JWT":
                return None
            if not isinstance(kid, str):
                return None
            key = self.keys.verify.get(kid)
            if key is None:
                return None
            signing_input = value[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
            if not self.keys.alg.verify(signing_input, key, _b64decode(signature_b64)):
                return None
            claims = json.loads(_b64decode(payload_b64))
        except (ValueError, TypeError, RecursionError, jwt.PyJWTError):
            return None
        return claims, kid

    def _token(self, claims: dict[str, Any], kid: str) -> Token | None:
        times = [claims.get(n) for n in ("exp", "nbf", "iat", "ct")]
        # NumericDate is a JSON number (RFC 7519 2): never a string, a bool, NaN or infinity.
        if not all(type(t) in (int, float) and math.isfinite(t) for t in times):  # type: ignore[arg-type]
            return None
        sid, data, user = claims.get("sid"), claims.get("d"), claims.get("uid")
        if not isinstance(sid, str) or not isinstance(data, dict):
            return None
        if user is not None and not isinstance(user, str):
            return None
        if self.options.issuer is not None and claims.get("iss") != self.options.issuer:
            return None
        if self.options.audience is not None and claims.get("aud") != self.options.audience:
            return None
        try:
            fields = {k: json_text(v) for k, v in data.items()}
        except TypeError:
            return None
        exp, nbf, iat, ct = (float(t) for t in times)  # type: ignore[arg-type]
        bound = claims.get("ub")
        if bound is not None and (type(bound) not in (int, float) or not math.isfinite(bound)):
            return None
        found = claims.get("m")
        facts = _NO_FACTS if found is None else checked_meta(found)
        if facts is None or BOUND in facts:
            return None
        if bound is not None:
            facts = {**facts, BOUND: float(bound)}
        return Token(sid, kid, exp, nbf, iat, ct, user, fields,
                     float(bound) if bound is not None else None, facts)

    # --- writing ----------------------------------------------------------------------------
    def create(self, record: Record) -> Steps[tuple[str, str, str]]:
        sid = _b64(secrets.token_bytes(16))
        token = self._issue(sid, record)
        if self.revocation is not None and record.user_id is not None:
            yield self._register(sid, record)
        return token, sid, sid

    def update(
        self, state: SessionState, changes: Mapping[str, str], removed: tuple[str, ...],
        record: Record,
    ) -> Steps[str | None]:
        assert state.token is not None
        if not state.touch:
            # The expiry slides in steps (as stored sessions' do), so the device record
            # written at the last step expires with the token.
            record.expires_at = state.expires_at
        token = self._issue(state.token, record)
        if self.revocation is not None:
            if state.user_changed and record.user_id is None:
                yield Delete(_device_key(state.token))  # unbound: no longer the user's device
            elif record.user_id is not None and (state.meta_changed or state.touch):
                yield self._register(state.token, record)
        return token

    def touch(self, state: SessionState, record: Record) -> Steps[str | None]:
        assert state.token is not None
        token = self._issue(state.token, record)
        if self.revocation is not None and record.user_id is not None:
            yield self._register(state.token, record)  # expires with the token
        return token

    def destroy(self, key: str, until: float) -> Steps[None]:
        """Deny-list the ``sid`` until its token would have expired anyway."""
        if self.revocation is None:
            return
        now = self._clock()
        if until > now:
            yield Create(_deny_key(key), Record({}, now, until, now, None, 1), self._absolute)
        yield Delete(_device_key(key))

    def check_user_listing(self) -> None:
        if self.revocation is None:
            raise ConfigError(NEEDS_REVOCATION)

    def user_records(self, user_id: str, now: float) -> Steps[list[tuple[str, Record]]]:
        """The device records of ``user_id``'s tokens, by ``sid``, save those a
        log-out-everywhere revoked since they were written."""
        self.check_user_listing()
        found: list[tuple[str, Record]] = yield ListUser(user_id, now)
        marker: Record | None = yield Load(self._user_marker(user_id), now, self._idle,
                                            self._absolute)
        revoked_before = _not_before(marker) if marker is not None else None
        return [(key[len(_DEVICE_PREFIX):], record) for key, record in found
                if key.startswith(_DEVICE_PREFIX) and (
                    revoked_before is None
                    or record.meta.get(BOUND, record.created_at) > revoked_before)]

    def _register(self, sid: str, record: Record) -> Op[bool]:
        """The device record of a token bound to a user: its times, instance and facts."""
        device = Record({}, record.created_at, record.expires_at, record.accessed_at,
                        record.user_id, 1, record.instance, record.meta)
        return Create(_device_key(sid), device, self._absolute)

    def not_before_op(self, user_id: str) -> Op[bool]:
        """Every session of ``user_id`` created before now is revoked."""
        now = self._clock()
        marker = Record({"nbf": repr(now)}, now, now + self._absolute, now, None, 1)
        return Create(self._user_marker(user_id), marker, self._absolute)

    def log_id(self, token: str) -> str:
        return hmac.digest(self._user_key, token.encode(), "sha256")[:8].hex()

    def cookie_value(self, state: SessionState, record: Record) -> str:
        """The token again, signed now (a refreshed cookie)."""
        assert state.token is not None
        return self._issue(state.token, record)

    def _issue(self, sid: str, record: Record) -> str:
        """Sign (or encrypt) the session as a token. The data claim is assembled from each
        value's JSON text, so nothing is encoded twice."""
        now = record.accessed_at
        claims = [
            f'"sid":{encode_basestring(sid)}',
            f'"iat":{int(now)}',
            f'"nbf":{int(now)}',
            f'"exp":{int(record.expires_at)}',
            f'"ct":{record.created_at!r}',
        ]
        if record.user_id is not None:
            claims.append(f'"uid":{encode_basestring(record.user_id)}')
        facts = record.meta
        bound = facts.get(BOUND)
        if bound is not None:
            claims.append(f'"ub":{float(bound)!r}')
        if len(facts) > (bound is not None):  # facts besides ub: one compact claim
            claims.append('"m":' + encode_meta({k: v for k, v in facts.items() if k != BOUND}))
        if self.options.issuer is not None:
            claims.append(f'"iss":{json.dumps(self.options.issuer)}')
        if self.options.audience is not None:
            claims.append(f'"aud":{json.dumps(self.options.audience)}')
        data = ",".join(f"{encode_basestring(k)}:{v}" for k, v in record.fields.items())
        payload = "{" + ",".join(claims) + ',"d":{' + data + "}}"
        if self.encryption is not None:
            token = self.encryption.seal(payload.encode())
        else:
            signing_input = self.keys.header_b64 + "." + _b64(payload.encode())
            signature = self.keys.alg.sign(signing_input.encode("ascii"), self.keys.sign)
            token = signing_input + "." + _b64(signature)
        self._known.put(token, Token(
            sid, self.kid, float(int(record.expires_at)), float(int(now)),
            float(int(now)), record.created_at, record.user_id, dict(record.fields),
            float(bound) if bound is not None else None,
            {**facts, BOUND: float(bound)} if bound is not None else dict(facts)))
        return token

    def _user_marker(self, user_id: str) -> str:
        return "u." + _b64(hmac.digest(self._user_key, user_id.encode(), "sha256")[:16])


_UNKNOWN: Any = object()


class _KnownTokens:
    """A bounded LRU map of token → what it says (``None`` for a token that failed): like
    ``functools.lru_cache``, but tokens signed here can be put in as they are issued."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Token | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, value: str, default: Any) -> Any:
        with self._lock:
            token = self._items.get(value, default)
            if token is not default:
                self._items.move_to_end(value)
            return token

    def put(self, value: str, token: Token | None) -> None:
        with self._lock:
            self._items[value] = token
            self._items.move_to_end(value)
            if len(self._items) > self._size:
                self._items.popitem(last=False)


def _key_bytes(private_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    der: bytes = private_key.private_bytes(serialization.Encoding.DER,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    return hashlib.sha256(der).digest()


def _deny_key(sid: str) -> str:
    return "r." + sid


_DEVICE_PREFIX = "s."


def _device_key(sid: str) -> str:
    return _DEVICE_PREFIX + sid


def _not_before(marker: Record) -> float:
    try:
        return float(marker.fields.get("nbf", "0"))
    except ValueError:
        return 0.0


__all__: Sequence[str] = ["JwtBackend"]
