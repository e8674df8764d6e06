"""Encrypted client sessions (``jwt://?encrypted=true``) under attack: every token the signed
mode refuses is refused here too, and so is every attack on the encrypted form itself —
tampering with any part, truncation, another key, another header, a downgrade to a signed
token, segments spliced from two tokens. Never a 500, never accepted: a fresh empty session.
A content key encrypts exactly one token, so no nonce can repeat."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from sessionkit import ConfigError, SessionConfig, SessionEngine, SessionTooLarge
from tests.security.test_jwt_attacks import BAD, DAY, NOW, claims, issue
from tests.support import FRAMEWORKS, KEY, OLD_KEY, FakeClock, ShopClient, make_app

URL = "jwt://?encrypted=true"
OTHER_KEY = "another-apps-secret-key-0123456789-abcdefgh"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def engine(**settings: Any) -> SessionEngine:
    settings.setdefault("store", URL)
    settings.setdefault("secret_key", KEY)
    settings.setdefault("clock", FakeClock(NOW))
    return SessionEngine(**settings)


def kek(secret: str = KEY) -> bytes:
    """The key-encryption key sessionkit derives (what an attacker who knew the secret has)."""
    return hmac.digest(secret.encode(), b"sessionkit/v1 jwe-kek", "sha256")


def kid(secret: str = KEY) -> str:
    return hmac.digest(secret.encode(), b"sessionkit/v1 jwe-kid", "sha256")[:6].hex()


def header(**fields: Any) -> str:
    values = {"alg": "A256KW", "enc": "A256GCM", "kid": kid(), "typ": "JWT", **fields}
    return b64(json.dumps({k: v for k, v in values.items() if v is not ...},
                          separators=(",", ":")).encode())


def sealed(payload: Any, *, head: str | None = None, key: bytes | None = None,
           cek_bytes: int = 32) -> str:
    """A token sealed by hand like sessionkit's: any header, any plaintext, any key."""
    protected = head if head is not None else header()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    cek, iv = secrets.token_bytes(cek_bytes), secrets.token_bytes(12)
    out = AESGCM(cek).encrypt(iv, body, protected.encode())
    return ".".join((protected, b64(aes_key_wrap(key or kek(), cek)), b64(iv),
                     b64(out[:-16]), b64(out[-16:])))


def flip(segment: str, at: int | None = None) -> str:
    """``segment`` with one character changed (in the middle: the bits it encodes all count)."""
    i = len(segment) // 2 if at is None else at
    return segment[:i] + ("A" if segment[i] != "A" else "B") + segment[i + 1:]


def bad_tokens() -> dict[str, tuple[dict[str, Any], str]]:
    good = issue(engine())
    h, wrapped, iv, ciphertext, tag = good.split(".")
    other = issue(engine()).split(".")
    plain: dict[str, Any] = {}
    aud = {"store": URL + "&audience=shop"}
    last = tag[-1]
    twin = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bits = twin[twin.index(last) ^ 1]  # tag: 128 bits in 22 chars, 4 spare bits
    found: dict[str, tuple[dict[str, Any], str]] = {
        # Every token the signed mode refuses, refused here too (none is even the shape).
        **{f"signed-catalog/{name}": (plain, token) for name, (_, token) in BAD.items()},
        # Downgrades: a signed token that the signed mode of this very secret accepts.
        "downgrade-valid-signed-token": (plain, issue(SessionEngine(
            store="jwt://", secret_key=KEY, clock=FakeClock(NOW)))),
        "downgrade-alg-none": (plain, b64(b'{"alg":"none"}') + "."
                               + b64(json.dumps(claims()).encode()) + "."),
        "tampered-header": (plain, ".".join((flip(h), wrapped, iv, ciphertext, tag))),
        "tampered-wrapped-key": (plain, ".".join((h, flip(wrapped), iv, ciphertext, tag))),
        "tampered-iv": (plain, ".".join((h, wrapped, flip(iv), ciphertext, tag))),
        "tampered-ciphertext": (plain, ".".join((h, wrapped, iv, flip(ciphertext), tag))),
        "tampered-tag": (plain, ".".join((h, wrapped, iv, ciphertext, flip(tag)))),
        "tag-respelled-same-bits": (plain, ".".join((h, wrapped, iv, ciphertext,
                                                     tag[:-1] + same_bits))),
        "truncated-tag": (plain, ".".join((h, wrapped, iv, ciphertext, tag[:-4]))),
        "no-tag": (plain, ".".join((h, wrapped, iv, ciphertext))),
        "empty-tag": (plain, ".".join((h, wrapped, iv, ciphertext, ""))),
        "truncated-ciphertext": (plain, ".".join((h, wrapped, iv, ciphertext[:-8], tag))),
        "empty-ciphertext": (plain, ".".join((h, wrapped, iv, "", tag))),
        "truncated-token": (plain, good[: len(good) // 2]),
        "six-segments": (plain, good + ".AAAA"),
        "spliced-key-from-another-token": (plain, ".".join((h, other[1], iv, ciphertext, tag))),
        "spliced-body-from-another-token": (plain, ".".join((h, wrapped, *other[2:]))),
        "another-apps-key": (plain, issue(engine(secret_key=OTHER_KEY))),
        "our-header-another-key": (plain, sealed(claims(), key=kek(OTHER_KEY))),
        "retired-key": (plain, issue(engine(secret_key=OLD_KEY))),
        "alg-dir-with-the-real-key": (plain, _direct(claims())),
        "alg-none": (plain, sealed(claims(), head=header(alg="none"))),
        "alg-A128KW": (plain, sealed(claims(), head=header(alg="A128KW"))),
        "enc-A128GCM": (plain, sealed(claims(), head=header(enc="A128GCM"))),
        "enc-CBC-HS512": (plain, sealed(claims(), head=header(enc="A256CBC-HS512"))),
        "zip-deflate": (plain, sealed(claims(), head=header(zip="DEF"))),
        "extra-header-field": (plain, sealed(claims(), head=header(cty="JWT"))),
        "no-kid": (plain, sealed(claims(), head=header(kid=...))),
        "unknown-kid": (plain, sealed(claims(), head=header(kid="0123456789ab"))),
        "header-respaced": (plain, sealed(claims(), head=b64(json.dumps(
            {"alg": "A256KW", "enc": "A256GCM", "kid": kid(), "typ": "JWT"}).encode()))),
        "typ-JWS": (plain, sealed(claims(), head=header(typ="JWS"))),
        "short-content-key": (plain, sealed(claims(), cek_bytes=16)),
        "expired": (plain, sealed(claims(exp=int(NOW - 10)))),
        "not-yet-valid": (plain, sealed(claims(nbf=int(NOW + 3600)))),
        "absolute-timeout-passed": (plain, sealed(claims(ct=NOW - 31 * DAY))),
        "wrong-audience": (aud, sealed(claims(aud="blog"))),
        "missing-sid": (plain, sealed(claims(sid=...))),
        "exp-as-string": (plain, sealed(claims(exp="99999999999"))),
        "facts-of-the-wrong-type": (plain, sealed(claims(m={"xi": "forever"}))),
        "not-json": (plain, sealed(b"not json at all")),
        "json-list": (plain, sealed(b'["sid","exp"]')),
        "deeply-nested": (plain, sealed(('{"sid":"x","iat":1,"nbf":1,"exp":9e99,"ct":1,"d":'
                                         + "[" * 100_000 + "]" * 100_000 + "}").encode())),
        "over-4kb": (plain, sealed(claims(d={"x": "y" * 5000}))),
        "base64-garbage": (plain, "!!!.@@@.###.$$$.%%%"),
    }
    return found


def _direct(payload: Any) -> str:
    """``"alg":"dir"``: the real key-encryption key used as the content key, no wrapping."""
    protected = header(alg="dir")
    iv = secrets.token_bytes(12)
    out = AESGCM(kek()).encrypt(iv, json.dumps(payload).encode(), protected.encode())
    return ".".join((protected, "", b64(iv), b64(out[:-16]), b64(out[-16:])))


BAD_JWE = bad_tokens()


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", sorted(BAD_JWE))
def test_crafted_token_is_refused_with_a_fresh_session(framework: str, name: str) -> None:
    settings, token = BAD_JWE[name]
    config = SessionConfig(**{"store": URL, "secret_key": KEY, "clock": FakeClock(NOW),
                              **settings})
    shop = ShopClient(framework, make_app(framework, config))
    reply = shop.raw("GET", "/whoami", cookie=f"session={token}")
    assert reply.status == 200
    assert reply.json["user"] is None
    assert reply.json["session_new"] is True
    assert reply.set_cookies == []


def test_every_signed_attack_and_thirty_more() -> None:
    assert sum(name.startswith("signed-catalog/") for name in BAD_JWE) == len(BAD)
    assert len(BAD_JWE) - len(BAD) >= 30


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_hand_sealed_tokens_differ_from_an_accepted_one_only_by_the_attack(
        framework: str) -> None:
    """The control: sealed by hand like the crafted ones, with the real key and header."""
    config = SessionConfig(store=URL, secret_key=KEY, clock=FakeClock(NOW))
    shop = ShopClient(framework, make_app(framework, config))
    reply = shop.raw("GET", "/whoami", cookie=f"session={sealed(claims())}")
    assert reply.json["user"] == "admin" and reply.json["session_new"] is False


def test_an_encrypted_token_is_no_signed_token_either() -> None:
    """The other way round: the signed mode refuses an encrypted token of the same secret."""
    token = issue(engine())
    signed_mode = SessionEngine(store="jwt://", secret_key=KEY, clock=FakeClock(NOW))
    assert signed_mode.load(f"session={token}").is_new


def test_the_client_cannot_read_its_session() -> None:
    e = engine()
    session = e.load(None)
    session["cart"] = ["secret-gift-for-bob"]
    session.user_id = "alice@example.com"
    session.description = "Firefox on Linux"
    session.mark_authenticated()
    [cookie] = e.commit(session).set_cookies
    token = cookie.split(";")[0].split("=", 1)[1]
    head = json.loads(unb64(token.split(".")[0]))
    assert head == {"alg": "A256KW", "enc": "A256GCM", "kid": kid(), "typ": "JWT"}
    visible = b"".join(unb64(part) for part in token.split(".")) + token.encode()
    for secret in (b"secret-gift", b"alice", b"Firefox", session.id.encode()):
        assert secret not in visible


def test_no_content_key_or_nonce_is_ever_used_twice() -> None:
    """By construction: each token has its own random content key (so an IV could only
    repeat under a key that encrypts nothing else). Checked over many tokens of one
    unchanged session, re-issued again and again."""
    e = engine()
    session = e.load(None)
    session["cart"] = ["apple"]
    [cookie] = e.commit(session).set_cookies
    tokens = {cookie.split(";")[0].split("=", 1)[1]}
    for _ in range(300):
        session = e.load(f"session={next(iter(tokens))}")
        session.mark_modified()  # the same content, sealed again
        [cookie] = e.commit(session).set_cookies
        tokens.add(cookie.split(";")[0].split("=", 1)[1])
    parts = [token.split(".") for token in tokens]
    content_keys = {aes_key_unwrap(kek(), unb64(p[1])) for p in parts}
    assert len(tokens) == len(content_keys) == len({p[2] for p in parts}) == 301
    assert len({p[3] for p in parts}) == 301  # the same plaintext never looks the same


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_replay_after_logout_and_after_logout_everywhere(framework: str) -> None:
    clock = FakeClock(NOW)
    config = SessionConfig(store=URL, secret_key=KEY, clock=clock,
                           revocation_store="memory://")
    shop = ShopClient(framework, make_app(framework, config))
    shop.call("POST", "/login", {"user": "alice"})
    stolen = shop.cookie
    shop.call("POST", "/logout")
    assert shop.raw("GET", "/whoami", cookie=f"session={stolen}").json["user"] is None
    shop.call("POST", "/login", {"user": "alice"})
    other_device = shop.cookie
    shop.forget_cookies()
    shop.call("POST", "/login", {"user": "alice"})
    clock.advance(1)
    shop.call("POST", "/logout?everywhere=1")
    assert shop.raw("GET", "/whoami", cookie=f"session={other_device}").json["user"] is None
    clock.advance(1)
    assert shop.call("POST", "/login", {"user": "alice"}).status == 200
    assert shop.call("GET", "/whoami").json["user"] == "alice"


def test_rotation_accepts_old_tokens_and_reissues_them_with_the_new_key() -> None:
    token = issue(engine(secret_key=OLD_KEY), cart=["apple"])
    rotated = engine(secret_key=[KEY, OLD_KEY])
    session = rotated.load(f"session={token}")
    assert session["cart"] == ["apple"]
    [cookie] = rotated.commit(session).set_cookies
    reissued = cookie.split(";")[0].split("=", 1)[1]
    assert json.loads(unb64(reissued.split(".")[0]))["kid"] == kid(KEY)
    assert engine(secret_key=KEY).load(f"session={reissued}")["cart"] == ["apple"]


def test_size_guard_names_the_largest_keys_and_never_emits_the_cookie() -> None:
    e = engine()
    session = e.load(None)
    session["cart"] = [f"item-{n:04d}-with-a-long-description" for n in range(200)]
    with pytest.raises(SessionTooLarge) as info:
        e.commit(session)
    assert info.value.largest_keys[0][0] == "cart"


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"store": URL + "&algorithm=HS512"}, "drop the algorithm"),
    ({"store": URL, "secret_key": None}, "needs secret_key"),
    ({"store": "jwt://?encrypted=maybe"}, "encrypted"),
])
def test_bad_encrypted_settings_fail_at_startup(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        engine(**settings)
