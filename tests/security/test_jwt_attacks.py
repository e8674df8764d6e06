"""Client mode under attack (RFC 8725): every crafted token gives a fresh empty session —
never a 500, never accepted. Plus rotation, asymmetric keys and the size guard."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sessionkit import SessionConfig, SessionEngine, SessionTooLarge
from tests.support import FRAMEWORKS, KEY, OLD_KEY, FakeClock, ShopClient, make_app

NOW = 1_800_000_000.0
DAY = 86400.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def engine(**settings: Any) -> SessionEngine:
    settings.setdefault("store", "jwt://")
    settings.setdefault("secret_key", KEY)
    settings.setdefault("clock", FakeClock(NOW))
    return SessionEngine(**settings)


def issue(e: SessionEngine, **data: Any) -> str:
    session = e.load(None)
    session.update(data or {"user": "alice"})
    session.user_id = "alice"
    [cookie] = e.commit(session).set_cookies
    return cookie.split(";")[0].split("=", 1)[1]


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"sid": "c2lkLXNpZC1zaWQtc2lkLXM", "iat": int(NOW), "nbf": int(NOW),
            "exp": int(NOW + DAY), "ct": NOW, "uid": "admin", "d": {"user": "admin"}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def signed(e: SessionEngine, payload: Any, *, alg: str = "HS256", kid: Any = None,
           key: Any = None, extra_header: dict[str, Any] | None = None) -> str:
    """A token signed by hand (any header, any payload bytes) with an HMAC key."""
    import hashlib
    import hmac

    keys = e.backend.keys  # type: ignore[attr-defined]
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    header = {"alg": alg, "kid": keys.kid if kid is None else kid, **(extra_header or {})}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(body)
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signature = hmac.digest(keys.sign if key is None else key, signing_input.encode(), digest)
    return signing_input + "." + b64(signature)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     signature])


def rsa_pem() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


def bad_tokens() -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (engine settings, token). Built once; every token must be refused."""
    e = engine()
    good = issue(e)
    header, payload, signature = good.split(".")
    kid = e.backend.keys.kid  # type: ignore[attr-defined]
    forged_payload = b64(json.dumps(claims()).encode())
    rsa_private, rsa_public = rsa_pem()
    rs = engine(store="jwt://?algorithm=RS256", jwt_private_key=rsa_private)
    rs_kid = rs.backend.keys.kid  # type: ignore[attr-defined]
    retired = engine(secret_key=OLD_KEY)
    audienced = engine(store="jwt://?audience=shop&issuer=https%3A%2F%2Fshop.example")
    plain: dict[str, Any] = {}
    aud = {"store": "jwt://?audience=shop&issuer=https%3A%2F%2Fshop.example"}
    rs_settings = {"store": "jwt://?algorithm=RS256", "jwt_private_key": rsa_private}
    return {
        "tampered-payload": (plain, f"{header}.{payload[:-4]}AAAA.{signature}"),
        "forged-payload-old-signature": (plain, f"{header}.{forged_payload}.{signature}"),
        "tampered-header": (plain, f"{header[:-3]}xyz.{payload}.{signature}"),
        "tampered-signature": (plain, f"{header}.{payload}.{signature[:-4]}AAAA"),
        "alg-none-empty-signature": (plain, unsigned({"alg": "none", "kid": kid}, claims())),
        "alg-none-with-signature": (plain, unsigned({"alg": "none", "kid": kid}, claims(),
                                                    signature)),
        "alg-None-capitalised": (plain, unsigned({"alg": "None", "kid": kid}, claims())),
        "hs256-with-rsa-public-key": (rs_settings, unsigned(
            {"alg": "HS256", "kid": rs_kid, "typ": "JWT"}, claims(),
            b64(__import__("hmac").digest(rsa_public.encode(), b"x", "sha256")))),
        "hs256-signed-by-public-pem": (rs_settings, _hs_with_key(rsa_public, rs_kid)),
        "expired": (plain, signed(e, claims(exp=int(NOW - 10)))),
        "not-yet-valid": (plain, signed(e, claims(nbf=int(NOW + 3600)))),
        "absolute-timeout-passed": (plain, signed(e, claims(ct=NOW - 31 * DAY))),
        "wrong-audience": (aud, signed(audienced, claims(aud="other",
                                                         iss="https://shop.example"))),
        "missing-audience": (aud, signed(audienced, claims(iss="https://shop.example"))),
        "wrong-issuer": (aud, signed(audienced, claims(aud="shop", iss="https://evil.example"))),
        "unknown-kid": (plain, signed(e, claims(), kid="0123456789ab")),
        "no-kid": (plain, unsigned({"alg": "HS256"}, claims())),
        "kid-not-a-string": (plain, signed(e, claims(), kid=7)),
        "retired-key": (plain, issue(retired)),
        "hs512-when-hs256-pinned": (plain, signed(e, claims(), alg="HS512",
                                                  key=e.backend.keys.sign * 2)),  # type: ignore[attr-defined]
        "crit-header": (plain, signed(e, claims(), extra_header={"crit": ["exp"], "exp": 1})),
        # Header parameters that would make a verifier fetch or trust a key named by the
        # token itself (RFC 8725 3.10): refused even when signed with the real key...
        "jku-header-real-key": (plain, signed(e, claims(), extra_header={
            "jku": "https://attacker.example/jwks.json"})),
        "x5u-header-real-key": (plain, signed(e, claims(), extra_header={
            "x5u": "https://attacker.example/cert.pem"})),
        # ...and as the attack comes: signed with the attacker's key, which the header names.
        "jku-attacker-key": (rs_settings, _rs_signed(rs_kid, {
            "jku": "https://attacker.example/jwks.json"})),
        "x5u-attacker-key": (rs_settings, _rs_signed(rs_kid, {
            "x5u": "https://attacker.example/cert.pem"})),
        "jwk-embedded-rsa-key": (rs_settings, _rs_signed(rs_kid, {"jwk": "attacker"})),
        "jwk-embedded-hmac-key": (plain, signed(e, claims(), key=b"attacker-key-" * 3,
                                               extra_header={"jwk": {
                                                   "kty": "oct", "k": b64(b"attacker-key-" * 3)}})),
        "x5c-embedded-certificate": (rs_settings, _rs_signed(rs_kid, {"x5c": ["MIIB..."]})),
        "stripped-signature": (plain, f"{header}.{payload}."),
        "stripped-signature-forged-payload": (plain, f"{header}.{forged_payload}."),
        "typ-at+jwt": (plain, signed(e, claims(), extra_header={"typ": "at+jwt"})),
        "typ-JWE": (plain, signed(e, claims(), extra_header={"typ": "JWE"})),
        "typ-not-a-string": (plain, signed(e, claims(), extra_header={"typ": ["JWT"]})),
        "truncated": (plain, good[:-10]),
        "two-segments": (plain, f"{header}.{payload}"),
        "four-segments": (plain, f"{good}.AAAA"),
        "base64-garbage": (plain, "!!!.@@@.###"),
        "not-json-payload": (plain, signed(e, b"not json at all")),
        "json-list-payload": (plain, signed(e, b'["sid","exp"]')),
        "missing-sid": (plain, signed(e, claims(sid=...))),
        "missing-exp": (plain, signed(e, claims(exp=...))),
        "exp-as-string": (plain, signed(e, claims(exp="99999999999"))),
        "exp-nan": (plain, signed(e, b'{"sid":"x","iat":1,"nbf":1,"exp":NaN,"ct":1,"d":{}}')),
        "data-not-an-object": (plain, signed(e, claims(d=["user", "admin"]))),
        "uid-not-a-string": (plain, signed(e, claims(uid=["admin"]))),
        "10kb-token": (plain, signed(e, claims(d={"x": "y" * 10_000}))),
        "deeply-nested": (plain, signed(e, ('{"sid":"x","iat":1,"nbf":1,"exp":9e99,"ct":1,'
                                            '"d":{"a":' + "[" * 100_000 + "]" * 100_000
                                            + "}}").encode())),
    }


def _rs_signed(kid: str, extra_header: dict[str, Any]) -> str:
    """An RS256 token for the pinned kid, signed with a key of the attacker's own; a ``jwk``
    of "attacker" embeds that key's public half in the header."""
    import jwt
    from jwt.algorithms import RSAAlgorithm

    private, public = rsa_pem()
    header = {"kid": kid, **extra_header}
    if header.get("jwk") == "attacker":
        header["jwk"] = json.loads(RSAAlgorithm.to_jwk(
            serialization.load_pem_public_key(public.encode())))
    return jwt.encode(claims(), private, algorithm="RS256", headers=header)


def _hs_with_key(pem: str, kid: str) -> str:
    import hashlib
    import hmac

    signing_input = (b64(json.dumps({"alg": "HS256", "kid": kid}).encode()) + "."
                     + b64(json.dumps(claims()).encode()))
    signature = hmac.digest(pem.encode(), signing_input.encode(), hashlib.sha256)
    return signing_input + "." + b64(signature)


BAD = bad_tokens()


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", sorted(BAD))
def test_crafted_token_is_refused_with_a_fresh_session(framework: str, name: str) -> None:
    settings, token = BAD[name]
    config = SessionConfig(**{"store": "jwt://", "secret_key": KEY,
                              "clock": FakeClock(NOW), **settings})
    shop = ShopClient(framework, make_app(framework, config))
    reply = shop.raw("GET", "/whoami", cookie=f"session={token}")
    assert reply.status == 200
    assert reply.json["user"] is None
    assert reply.json["session_new"] is True
    assert reply.set_cookies == []


def test_at_least_twenty_attacks() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_hand_made_tokens_differ_from_an_accepted_one_only_by_the_attack(
        framework: str) -> None:
    """The control: a token signed by hand like the crafted ones, with the real key and a
    plain header, is accepted; each refusal above is the attack's doing, not the harness's."""
    e = engine()
    config = SessionConfig(store="jwt://", secret_key=KEY, clock=FakeClock(NOW))
    shop = ShopClient(framework, make_app(framework, config))
    reply = shop.raw("GET", "/whoami", cookie=f"session={signed(e, claims())}")
    assert reply.json["user"] == "admin" and reply.json["session_new"] is False


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_apps_sharing_a_jwt_secret_must_set_an_audience(framework: str) -> None:
    """Two apps signing with one secret accept each other's tokens (a session of the blog
    is a session of the shop) unless each sets its own audience."""
    def app(store: str) -> ShopClient:
        config = SessionConfig(store=store, secret_key=KEY, clock=FakeClock(NOW))
        return ShopClient(framework, make_app(framework, config))

    blog_token = issue(engine(store="jwt://"), user="mallory")
    assert app("jwt://").raw("GET", "/whoami", cookie=f"session={blog_token}"
                             ).json["user"] == "mallory"  # the risk, as documented
    blog_token = issue(engine(store="jwt://?audience=blog"), user="mallory")
    shop = app("jwt://?audience=shop")
    assert shop.raw("GET", "/whoami", cookie=f"session={blog_token}").json["user"] is None
    own = issue(engine(store="jwt://?audience=shop"), user="alice")
    assert shop.raw("GET", "/whoami", cookie=f"session={own}").json["user"] == "alice"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_replay_after_logout_and_after_logout_everywhere(framework: str) -> None:
    clock = FakeClock(NOW)
    config = SessionConfig(store="jwt://", secret_key=KEY, clock=clock,
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
    assert shop.call("POST", "/login", {"user": "alice"}).status == 200  # new logins work
    assert shop.call("GET", "/whoami").json["user"] == "alice"


def test_without_a_revocation_store_logout_cannot_stop_a_copied_token() -> None:
    clock = FakeClock(NOW)
    config = SessionConfig(store="jwt://", secret_key=KEY, clock=clock)
    shop = ShopClient("flask", make_app("flask", config))
    shop.call("POST", "/login", {"user": "alice"})
    copied = shop.cookie
    assert shop.call("POST", "/logout").set_cookies[0].startswith("session=;")
    # The documented limit: a copy stays valid until its exp (at most the idle timeout).
    assert shop.raw("GET", "/whoami", cookie=f"session={copied}").json["user"] == "alice"
    clock.advance(14 * DAY + 1)
    assert shop.raw("GET", "/whoami", cookie=f"session={copied}").json["user"] is None


def test_rotation_accepts_old_tokens_and_reissues_them_with_the_new_key() -> None:
    old = engine(secret_key=OLD_KEY)
    token = issue(old, cart=["apple"])
    rotated = engine(secret_key=[KEY, OLD_KEY])
    session = rotated.load(f"session={token}")
    assert session["cart"] == ["apple"]
    [cookie] = rotated.commit(session).set_cookies
    reissued = cookie.split(";")[0].split("=", 1)[1]
    new_kid = json.loads(base64.urlsafe_b64decode(reissued.split(".")[0] + "=="))["kid"]
    assert new_kid == rotated.backend.keys.kid  # type: ignore[attr-defined]
    assert engine(secret_key=KEY).load(f"session={reissued}")["cart"] == ["apple"]


def _pems(key: Any) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


@pytest.mark.parametrize(("algorithm", "make_key"), [
    ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ("EdDSA", ed25519.Ed25519PrivateKey.generate),
])
def test_asymmetric_algorithms_and_public_key_rotation(algorithm: str, make_key: Any) -> None:
    old_private, old_public = _pems(make_key())
    new_private, _ = _pems(make_key())
    url = f"jwt://?algorithm={algorithm}"
    token = issue(engine(store=url, jwt_private_key=old_private, secret_key=None))
    rotated = engine(store=url, jwt_private_key=new_private, jwt_public_keys=[old_public],
                     secret_key=None)
    assert rotated.load(f"session={token}")["user"] == "alice"
    only_new = engine(store=url, jwt_private_key=new_private, secret_key=None)
    assert only_new.load(f"session={token}").is_new


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"store": "jwt://?algorithm=RS256"}, "needs jwt_private_key"),
    ({"store": "jwt://?algorithm=none"}, "not supported"),
    ({"store": "jwt://?algorithm=HS256", "secret_key": None}, "needs secret_key"),
    ({"store": "jwt://?algorithm=ES256", "jwt_private_key": "not a pem"}, "not a PEM"),
    ({"store": "jwt://?colour=red"}, "unknown option"),
    ({"store": "jwt://?leeway=9999"}, "leeway"),
    ({"store": "jwt://", "migrate_from": "redis://127.0.0.1/0"}, "cannot hold"),
])
def test_bad_jwt_settings_fail_at_startup(settings: dict[str, Any], fragment: str) -> None:
    from sessionkit import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        engine(**settings)


def test_revocation_store_with_a_server_side_store_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine(store="memory://", revocation_store="memory://")
    assert "revocation_store is ignored with memory://" in caplog.text


def test_ec_key_for_rs256_is_refused() -> None:
    from sessionkit import ConfigError

    private, _ = _pems(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match="does not match"):
        engine(store="jwt://?algorithm=RS256", jwt_private_key=private, secret_key=None)


def test_size_guard_names_the_largest_keys_and_never_emits_the_cookie() -> None:
    e = engine()
    session = e.load(None)
    session["cart"] = [f"item-{n:04d}-with-a-long-description" for n in range(200)]
    session["user"] = "alice"
    with pytest.raises(SessionTooLarge) as info:
        e.commit(session)
    assert "'cart'" in str(info.value)
    assert "server-side store" in str(info.value)
    assert info.value.largest_keys[0][0] == "cart"


def test_size_guard_through_flask_is_an_error_response_without_a_cookie() -> None:
    config = SessionConfig(store="jwt://", secret_key=KEY)
    shop = ShopClient("flask", make_app("flask", config))
    reply = None
    for n in range(100):
        reply = shop.call("POST", f"/cart/item-{n:03d}-with-a-long-name-here")
        if reply.status != 200:
            break
    assert reply is not None
    assert reply.status == 500
    assert reply.set_cookies == []
    assert shop.call("GET", "/cart").status == 200  # the last good cookie still works
