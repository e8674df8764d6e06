"""The attack catalog (OWASP Session Management Cheat Sheet, RFC 8725), one test per attack,
through the example shop on both frameworks and every mode where the attack applies: local
(memory), shared (SQLite, Redis, PostgreSQL, MariaDB) and client (jwt://, with a revocation
store in memory or Redis).

Elsewhere in the catalog: forged, tampered, truncated and foreign-key server-side cookies in
``tests/integration/test_bad_cookies.py``; 47 crafted JWTs (alg none, stripped signatures, key
confusion, jku/x5u/jwk/x5c/crit headers, bad typ, unknown kid, tampered claims...) and tokens
of another app sharing the secret in ``tests/security/test_jwt_attacks.py``; planted or
garbled Redis records in ``tests/integration/test_redis_store.py``; secrets in store URLs in
``test_url_redaction.py``; links and foreign files planted for the worker lock in
``test_worker_lock.py``; tokens in URLs, DNS rebinding and framing of the dashboard in
``test_dashboard_exposure.py``; host names, keys and dumps disclosed in ``test_disclosure.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import secrets
from pathlib import Path
from typing import Any

import pytest

from sessionkit import ConfigError, SessionConfig, SessionEngine
from tests.stores import store_case
from tests.support import INSTANCE, KEY, FakeClock, ShopClient, engine_of, make_app

MODES = ["memory", "sqlite", "redis", "postgresql", "mariadb", "jwt", "jwt-redis"]
SERVER_MODES = ["memory", "sqlite", "redis", "postgresql", "mariadb"]
HOUR = 3600.0
#: Guesses per mode. Ids and tokens are judged before any store lookup, identically whatever
#: the store, so the full count runs once per kind of cookie (server-side id, JWT) and a
#: sample on each real store proves it never sees one.
GUESSES = {"memory": 100_000, "jwt": 100_000}
SAMPLE = 2_000


def config_for(request: pytest.FixtureRequest, tmp_path: Path, mode: str, clock: FakeClock,
               **settings: Any) -> SessionConfig:
    case = store_case(request, tmp_path, mode)
    return SessionConfig(store=case.url, secret_key=KEY, instance_id=INSTANCE, clock=clock,
                         **{**case.settings, **settings})


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=["flask", "fastapi"])
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def shop(request: pytest.FixtureRequest, tmp_path: Path, mode: str, framework: str,
         clock: FakeClock) -> ShopClient:
    config = config_for(request, tmp_path, mode, clock,
                        idle_timeout=HOUR, absolute_timeout=4 * HOUR)
    return ShopClient(framework, make_app(framework, config))


def replay(shop: ShopClient, cookie: str | None) -> Any:
    """What the app says to a request carrying exactly this session cookie."""
    reply = shop.raw("GET", "/whoami", cookie=f"session={cookie}")
    assert reply.status == 200, reply.body
    return reply.json


def login(shop: ShopClient, user: str = "alice") -> str:
    reply = shop.call("POST", "/login", {"user": user})
    assert reply.status == 200, reply.body
    assert shop.cookie is not None
    return shop.cookie


# --- session lifecycle attacks ------------------------------------------------------------------
def test_fixation_the_pre_login_id_is_replaced_and_dead(shop: ShopClient) -> None:
    shop.call("POST", "/cart/apple")  # the attacker's pre-login session, planted on the victim
    planted = shop.cookie
    assert planted is not None
    login(shop)
    assert shop.cookie != planted
    assert replay(shop, shop.cookie)["user"] == "alice"
    dead = replay(shop, planted)
    assert dead["user"] is None and dead["session_new"] is True


def test_replay_after_logout(shop: ShopClient) -> None:
    stolen = login(shop)
    shop.call("POST", "/cart/apple")
    stolen = shop.cookie or stolen
    assert shop.call("POST", "/logout").status == 200
    assert replay(shop, stolen)["user"] is None
    assert shop.raw("GET", "/cart", cookie=f"session={stolen}").json == {"cart": []}


def test_replay_after_log_out_everywhere(shop: ShopClient) -> None:
    laptop = login(shop)
    phone_browser = ShopClient(shop.framework, shop.app)
    phone = login(phone_browser)
    assert replay(shop, phone)["user"] == "alice"
    assert phone_browser.call("POST", "/logout?everywhere=1").status == 200
    assert replay(shop, laptop)["user"] is None
    assert replay(shop, phone)["user"] is None


def test_expired_idle(shop: ShopClient, clock: FakeClock) -> None:
    cookie = login(shop)
    clock.advance(HOUR - 1)
    assert replay(shop, cookie)["user"] == "alice"  # still within the idle timeout
    clock.advance(HOUR + 1)
    assert replay(shop, cookie)["user"] is None


def test_expired_absolute_however_active(shop: ShopClient, clock: FakeClock) -> None:
    login(shop)
    for _ in range(7):  # a request every half hour keeps the idle timeout at bay
        clock.advance(HOUR / 2)
        assert shop.call("POST", "/cart/apple").status == 200
    kept = shop.cookie
    assert replay(shop, kept)["user"] == "alice"
    clock.advance(HOUR / 2 + 1)  # past four hours since login
    assert replay(shop, kept)["user"] is None


def test_guessed_ids_never_hit_and_never_create_a_record(
    request: pytest.FixtureRequest, tmp_path: Path, mode: str, clock: FakeClock
) -> None:
    engine = SessionEngine(config_for(request, tmp_path, mode, clock))
    real = engine.load(None)
    real["user"] = "alice"
    engine.commit(real)
    count = GUESSES.get(mode, SAMPLE)
    guesses = (
        [f"session={secrets.token_urlsafe(48)}.{INSTANCE}" for _ in range(count)]
        if mode in SERVER_MODES else  # well-formed ids: 64 base64url characters and a route
        [f"session={_random_jwt()}" for _ in range(count)]
    )
    hits = sum(not engine.load(cookie).is_new for cookie in guesses)
    assert hits == 0
    assert engine.events.lookups["invalid"] == count  # refused before any store lookup
    assert _records(engine) == 1  # the real session, nothing else


def _random_jwt() -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k","typ":"JWT"}').rstrip(b"=")
    return ".".join([header.decode(), secrets.token_urlsafe(90), secrets.token_urlsafe(32)])


def _records(engine: SessionEngine) -> int:
    store: Any = engine.store
    if engine.config.scheme == "jwt":
        return 1  # nothing is stored: the token is the session
    return sum(len(batch) for batch in store.iter_records())


def test_a_cookie_smuggled_after_a_comma_is_not_a_cookie(shop: ShopClient) -> None:
    """``q=x,session=<attacker>; session=<victim>``: an attacker who can set one cookie value
    (a subdomain, a reflected parameter) appends a session of theirs after a comma. Cookies are
    separated by ``;`` only (RFC 6265): the comma is part of ``q``'s value, and the victim's
    own session is served, as Starlette and Werkzeug read the same header."""
    from starlette.requests import cookie_parser
    from werkzeug.http import parse_cookie

    attacker = ShopClient(shop.framework, shop.app)
    attacker_cookie = login(attacker, "mallory")
    victim_cookie = login(shop, "alice")
    header = f"q=x,session={attacker_cookie}; session={victim_cookie}"
    assert parse_cookie(header)["session"] == victim_cookie
    assert cookie_parser(header)["session"] == victim_cookie
    reply = shop.raw("GET", "/whoami", cookie=header)
    assert reply.status == 200, reply.body
    assert reply.json["user"] == "alice"
    # Old RFC 2109 style, commas between cookies: one cookie named q, no session at all.
    alone = shop.raw("GET", "/whoami", cookie=f"q=x, session={attacker_cookie}").json
    assert alone["user"] is None and alone["session_new"] is True


# --- hostile store content ---------------------------------------------------------------------
class Exploit:
    """Unpickling this creates a file: proof that a payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("mode", ["sqlite", "redis", "postgresql", "mariadb"])
def test_a_pickle_planted_in_a_store_row_is_never_unpickled(
    request: pytest.FixtureRequest, tmp_path: Path, mode: str, framework: str, clock: FakeClock
) -> None:
    config = config_for(request, tmp_path, mode, clock)
    shop = ShopClient(framework, make_app(framework, config))
    shop.call("POST", "/cart/apple")
    store: Any = engine_of(shop.app).store
    [[(key, _record)]] = list(store.iter_records())
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Exploit(marker))
    _plant(mode, config.store, store, key, payload)
    reply = shop.call("GET", "/cart")
    assert reply.status == 200
    assert not marker.exists()
    # Either the row is refused as unreadable (a fresh session) or the planted value is
    # handed over as the inert text it is, never as an object.
    assert reply.json["cart"] in ([], payload.decode("latin-1"))


def _plant(mode: str, url: str, store: Any, key: str, payload: bytes) -> None:
    if mode == "redis":
        import redis

        client = redis.Redis.from_url(url)
        client.hset(store.prefix + key, "d:cart", payload)
        client.close()
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        # JSON escapes the pickle's NUL bytes, which PostgreSQL text cannot hold.
        text = json.dumps({"cart": json.dumps(payload.decode("latin-1"))})
        connection.execute(sa.text("UPDATE sessionkit_sessions SET data = :d WHERE id = :k"),
                           {"d": text, "k": key})
    engine.dispose()


# --- cookie attributes -------------------------------------------------------------------------
def _attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "")
            for p in parts[1:]}


def _every_set_cookie(shop: ShopClient) -> dict[str, list[str]]:
    """The Set-Cookie headers of a new session, a login (regenerate) and a logout (delete),
    each request carrying exactly the cookie the previous one set."""
    name = shop.cookie_name

    def value(cookies: list[str]) -> str:
        [mine] = [c for c in cookies if c.startswith(name + "=")]
        return mine.split(";")[0]

    created = shop.raw("POST", "/cart/apple").set_cookies
    regenerated = shop.raw("POST", "/login", cookie=value(created), body={"user": "alice"})
    deleted = shop.raw("POST", "/logout", cookie=value(regenerated.set_cookies))
    seen = {"set": created, "regenerate": regenerated.set_cookies, "delete": deleted.set_cookies}
    for path, cookies in seen.items():
        assert value(cookies), f"no Set-Cookie on {path}"
    assert "max-age" in _attributes(value(deleted.set_cookies) + "; " + deleted.set_cookies[0]
                                    .split(";", 1)[1])
    return seen


@pytest.mark.parametrize("https", [False, True])
def test_every_set_cookie_carries_the_configured_attributes(
    request: pytest.FixtureRequest, tmp_path: Path, mode: str, framework: str,
    clock: FakeClock, https: bool,
) -> None:
    config = config_for(request, tmp_path, mode, clock, cookie_samesite="strict",
                        cookie_domain="example.test", cookie_path="/shop",
                        cookie_secure=https)
    shop = ShopClient(framework, make_app(framework, config), https=https)
    for path, cookies in _every_set_cookie(shop).items():
        for cookie in cookies:
            attributes = _attributes(cookie)
            assert attributes["path"] == "/shop", (path, cookie)
            assert attributes["domain"] == "example.test", (path, cookie)
            assert attributes["samesite"] == "Strict", (path, cookie)
            assert "httponly" in attributes, (path, cookie)
            assert ("secure" in attributes) is https, (path, cookie)


def test_host_prefix_forces_secure_and_path_on_every_set_cookie(
    request: pytest.FixtureRequest, tmp_path: Path, mode: str, framework: str, clock: FakeClock
) -> None:
    config = config_for(request, tmp_path, mode, clock, cookie_name="__Host-session")
    shop = ShopClient(framework, make_app(framework, config), https=True,
                      cookie_name="__Host-session")
    for path, cookies in _every_set_cookie(shop).items():
        for cookie in cookies:
            assert cookie.startswith("__Host-session="), (path, cookie)
            attributes = _attributes(cookie)
            assert "secure" in attributes and attributes["path"] == "/", (path, cookie)
            assert "domain" not in attributes, (path, cookie)
    # Behind a TLS-terminating proxy the app may see http: Secure is set all the same.
    plain = ShopClient(framework, shop.app, cookie_name="__Host-session")
    for cookies in _every_set_cookie(plain).values():
        assert all("secure" in _attributes(cookie) for cookie in cookies)


@pytest.mark.parametrize(("settings", "fix"), [
    ({"cookie_name": "__Host-session", "cookie_path": "/shop"}, "cookie_path='/'"),
    ({"cookie_name": "__Host-session", "cookie_domain": "example.test"}, "no cookie_domain"),
    ({"cookie_name": "__Host-session", "cookie_secure": False}, "Secure"),
    ({"cookie_name": "__Secure-session", "cookie_secure": False}, "Secure"),
])
def test_a_prefixed_cookie_that_browsers_would_drop_is_refused_at_startup(
    settings: dict[str, Any], fix: str
) -> None:
    with pytest.raises(ConfigError, match=fix):
        SessionConfig(secret_key=KEY, **settings)


def test_vary_cookie_on_every_response_that_used_the_session(shop: ShopClient) -> None:
    for method, path, body in [("POST", "/cart/apple", None), ("GET", "/cart", None),
                               ("POST", "/login", {"user": "alice"}), ("GET", "/whoami", None),
                               ("POST", "/logout", None)]:
        reply = shop.call(method, path, body)
        assert reply.status == 200
        vary = [v.strip().lower() for h in reply.headers_named("vary") for v in h.split(",")]
        assert "cookie" in vary, (path, reply.headers)


# --- logs ---------------------------------------------------------------------------------------
def test_no_raw_id_or_token_in_any_log_line(
    shop: ShopClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    cookies: set[str] = set()

    def step(method: str, path: str, body: Any = None) -> None:
        shop.call(method, path, body)
        if shop.cookie:
            cookies.add(shop.cookie)

    step("POST", "/cart/apple")
    step("POST", "/login", {"user": "alice"})
    step("POST", "/cart/pear")
    stale = shop.cookie or ""
    tampered = stale[:10] + ("A" if stale[10] != "A" else "B") + stale[11:]
    for hostile in (tampered, stale + "x", f"{stale}; session={stale}",
                    stale.rsplit(".", 1)[0] + ".inst-b"):  # tampered, doubled, other instance
        shop.raw("GET", "/whoami", cookie=f"session={hostile}")
    clock.advance(2 * HOUR)
    shop.raw("GET", "/whoami", cookie=f"session={stale}")  # expired
    clock.advance(-2 * HOUR)
    step("POST", "/logout")
    shop.raw("GET", "/whoami", cookie=f"session={stale}")  # replayed after logout
    shop.raw("GET", "/whoami", cookie=f"session={stale.split('.')[0]}.inst-b")  # gone, elsewhere
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "sessionkit" in logged, "nothing was logged: the check would prove nothing"
    assert len(cookies) >= 2
    for cookie in cookies:
        # The whole value, the id without its route, and each part of a JWT.
        pieces = {cookie, cookie.split(".")[0], *cookie.split(".")}
        for piece in pieces:
            if len(piece) >= 16:
                assert piece not in logged, "a session id or token was logged"
