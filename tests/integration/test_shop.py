"""The shop behaviour suite: every scenario runs on both frameworks (and, as stores land, on
every store), so a pass proves the session API is the same everywhere."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path

import pytest

from sessionkit import SessionConfig
from sessionkit.redact import redact_url
from tests.stores import ALL_STORES, StoreCase, iter_params, store_case
from tests.support import (
    FRAMEWORKS,
    INSTANCE,
    KEY,
    FakeClock,
    ShopClient,
    cookie_attributes,
    deletes_cookie,
    make_app,
)

DAY = 86400.0
COOKIE_RE = re.compile(r"^session=([A-Za-z0-9_-]{64})\.([a-z0-9-]+);")
JWT_RE = re.compile(r"^session=eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+;")
#: An encrypted token (JWE): header, wrapped key, IV, ciphertext, tag; nothing readable.
JWE_RE = re.compile(r"^session=eyJ[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){4};")


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(iter_params(list(ALL_STORES))))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return store_case(request, tmp_path, request.param)


@pytest.fixture
def store_url(case: StoreCase) -> str:
    return case.url


def config_for(store_url: str, clock: FakeClock, **kwargs: object) -> SessionConfig:
    return SessionConfig(store=store_url, secret_key=KEY, instance_id=INSTANCE, clock=clock,
                         **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def shop(framework: str, case: StoreCase, clock: FakeClock) -> ShopClient:
    config = config_for(case.url, clock, **case.settings)
    return ShopClient(framework, make_app(framework, config))


def test_no_cookie_and_no_write_for_an_untouched_new_session(
    shop: ShopClient, store_url: str
) -> None:
    reply = shop.call("GET", "/whoami")
    assert reply.status == 200
    assert reply.json == {"instance": INSTANCE, "session_new": True,
                          "store": redact_url(store_url), "user": None}
    assert reply.set_cookies == []
    assert reply.header("vary") == "Cookie"
    assert shop.call("GET", "/cart").set_cookies == []
    assert shop.cookie is None


def test_login_sets_one_cookie_with_route_and_attributes(shop: ShopClient, case: StoreCase
                                                        ) -> None:
    reply = shop.call("POST", "/login", {"user": "alice"})
    assert reply.status == 200
    assert reply.json == {"user": "alice"}
    [cookie] = reply.set_cookies
    if case.client_side and "encrypted" in case.url:  # the session, encrypted
        assert JWE_RE.match(cookie), cookie
        assert "alice" not in cookie  # nor in any part of it, decoded
        for part in cookie.split(";")[0].split("=", 1)[1].split(".")[1:]:
            assert b"alice" not in base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    elif case.client_side:  # the session itself: a JWT (header.payload.signature)
        assert JWT_RE.match(cookie), cookie
    else:
        match = COOKIE_RE.match(cookie)
        assert match, cookie
        assert match.group(2) == INSTANCE
    attributes = cookie_attributes(cookie)
    assert {"path", "httponly", "samesite"} <= set(attributes)
    # Each framework's own spelling: Starlette writes Max-Age, Werkzeug (Flask) Expires.
    assert "max-age" in attributes or "expires" in attributes
    assert "secure" not in attributes  # plain http, cookie_secure="auto"
    assert attributes["samesite"].lower() == "lax" and attributes["path"] == "/"
    assert reply.header("vary") == "Cookie"
    who = shop.call("GET", "/whoami").json
    assert who["user"] == "alice" and who["session_new"] is False


def test_cart_add_remove_persists_and_reads_never_rewrite_the_cookie(
    shop: ShopClient, case: StoreCase
) -> None:
    assert shop.call("POST", "/cart/apple").json == {"cart": ["apple"]}
    first_cookie = shop.cookie
    assert shop.call("POST", "/cart/pear").json == {"cart": ["apple", "pear"]}
    assert shop.call("POST", "/cart/apple").json == {"cart": ["apple", "pear", "apple"]}
    removed = shop.call("DELETE", "/cart/apple")
    assert removed.json == {"cart": ["pear", "apple"]}
    # An in-place change is saved, and the cookie sent again as the frameworks do on a write:
    # server-side the same id, client-side a new token.
    assert len(removed.set_cookies) == 1
    cookie = shop.cookie
    read = shop.call("GET", "/cart")
    assert read.json == {"cart": ["pear", "apple"]}
    assert read.set_cookies == []
    assert shop.cookie == cookie
    assert (shop.cookie == first_cookie) is not case.client_side
    assert shop.call("DELETE", "/cart/kiwi").status == 404


def test_in_place_mutation_is_saved_across_requests(shop: ShopClient) -> None:
    for item in ("a", "b", "c"):
        shop.call("POST", f"/cart/{item}")  # the view only appends to the loaded list
    assert shop.call("GET", "/cart").json == {"cart": ["a", "b", "c"]}


def test_logout_clears_the_cookie_and_the_old_cookie_is_dead(shop: ShopClient) -> None:
    shop.call("POST", "/login", {"user": "alice"})
    shop.call("POST", "/cart/apple")
    old = shop.cookie
    reply = shop.call("POST", "/logout")
    assert reply.json == {"logged_out": "alice"}
    [cookie] = reply.set_cookies
    assert deletes_cookie(cookie) and cookie_attributes(cookie)["path"] == "/"
    assert shop.cookie is None
    replay = shop.raw("GET", "/whoami", cookie=f"session={old}")
    assert replay.json["user"] is None and replay.json["session_new"] is True
    assert shop.raw("GET", "/cart", cookie=f"session={old}").json == {"cart": []}


def test_login_regenerates_the_id_keeps_the_cart_and_kills_the_old_id(
    shop: ShopClient, store_url: str, case: StoreCase
) -> None:
    shop.call("POST", "/cart/apple")
    before = shop.cookie
    reply = shop.call("POST", "/login", {"user": "bob"})
    after = shop.cookie
    assert reply.set_cookies and before and after and before != after
    if not case.client_side:
        assert before.split(".")[0] != after.split(".")[0]
    assert shop.call("GET", "/cart").json == {"cart": ["apple"]}
    stale = shop.raw("GET", "/whoami", cookie=f"session={before}")
    assert stale.json == {"instance": INSTANCE, "session_new": True,
                          "store": redact_url(store_url), "user": None}


def test_idle_timeout_slides_with_use_and_expires_without(
    shop: ShopClient, clock: FakeClock, case: StoreCase
) -> None:
    shop.call("POST", "/cart/apple")
    for _ in range(3):  # 3 x 5 days of use: past the 14-day idle timeout in total
        clock.advance(5 * DAY)
        reply = shop.call("GET", "/cart")
        assert reply.json == {"cart": ["apple"]}
        # Server-side sliding costs no Set-Cookie; a token is re-issued with a later exp.
        assert len(reply.set_cookies) == (1 if case.client_side else 0)
    clock.advance(60)
    assert shop.call("GET", "/cart").set_cookies == []  # not again within a tenth of idle
    clock.advance(14 * DAY + 1)
    assert shop.call("GET", "/cart").json == {"cart": []}


def test_absolute_timeout_ends_even_an_active_session(shop: ShopClient, clock: FakeClock) -> None:
    shop.call("POST", "/login", {"user": "alice"})
    for _ in range(5):  # active every 5 days: never idle, 25 days old
        clock.advance(5 * DAY)
        assert shop.call("GET", "/whoami").json["user"] == "alice"
    clock.advance(5 * DAY)  # 30 days after creation
    assert shop.call("GET", "/whoami").json["user"] is None


def test_old_cookie_never_revives_an_expired_session(
    shop: ShopClient, clock: FakeClock, case: StoreCase
) -> None:
    shop.call("POST", "/cart/apple")
    cookie = shop.cookie
    clock.advance(15 * DAY)
    assert shop.raw("GET", "/cart", cookie=f"session={cookie}").json == {"cart": []}
    clock.now -= 15 * DAY  # server-side, the expired record is gone even if the clock goes back
    revived = shop.raw("GET", "/cart", cookie=f"session={cookie}").json
    # A token carries its own expiry: judged by a clock that went back, it is valid again.
    assert revived == ({"cart": ["apple"]} if case.client_side else {"cart": []})


def test_secure_attribute_follows_https(framework: str, store_url: str, clock: FakeClock) -> None:
    app = make_app(framework, config_for(store_url, clock))
    https = ShopClient(framework, app, https=True)
    [cookie] = https.call("POST", "/cart/apple").set_cookies
    assert "; Secure" in cookie


@pytest.mark.parametrize(
    ("settings", "expected", "absent"),
    [
        ({"cookie_name": "__Host-sid"}, ["__Host-sid=", "; Secure", "Path=/"], ["Domain="]),
        ({"cookie_samesite": "strict", "cookie_domain": "example.com"},
         ["SameSite=Strict", "Domain=example.com"], ["Secure"]),
        ({"cookie_httponly": False, "cookie_path": "/shop"}, ["Path=/shop"], ["HttpOnly"]),
        ({"cookie_persistent": False}, ["HttpOnly"], ["Max-Age", "Expires"]),
        ({"cookie_secure": True, "cookie_samesite": "none"}, ["; Secure", "SameSite=None"], []),
    ],
)
def test_configured_cookie_attributes_on_set_and_delete(
    framework: str, clock: FakeClock, settings: dict[str, object], expected: list[str],
    absent: list[str],
) -> None:
    config = config_for("memory://", clock, **settings)
    shop = ShopClient(framework, make_app(framework, config), cookie_name=config.cookie_name)
    [created] = shop.call("POST", "/cart/apple").set_cookies
    value = created.split(";")[0].split("=", 1)[1]
    cookie_header = f"{config.cookie_name}={value}"
    login = shop.raw("POST", "/login", cookie=cookie_header, body={"user": "al"})
    [regenerated] = login.set_cookies
    [deleted] = shop.raw("POST", "/logout", cookie=cookie_header).set_cookies
    assert "Max-Age=0" in deleted  # deletion always expires, persistent cookies or not
    for header in (created, regenerated, deleted):
        for part in expected:
            assert part in header, (part, header)
        for part in absent:
            if header is not deleted or part not in ("Max-Age", "Expires"):
                assert part not in header, (part, header)


def test_timeouts_accept_timedelta_and_short_values(framework: str, clock: FakeClock) -> None:
    config = config_for("memory://", clock, idle_timeout=timedelta(minutes=5),
                        absolute_timeout="1h")
    shop = ShopClient(framework, make_app(framework, config))
    shop.call("POST", "/cart/apple")
    clock.advance(299)
    assert shop.call("GET", "/cart").json == {"cart": ["apple"]}
    clock.advance(301)
    assert shop.call("GET", "/cart").json == {"cart": []}


def test_logout_everywhere_ends_every_session_of_the_user(shop: ShopClient) -> None:
    shop.call("POST", "/login", {"user": "carol"})
    laptop = shop.cookie
    shop.forget_cookies()
    shop.call("POST", "/login", {"user": "carol"})
    phone = shop.cookie
    assert shop.raw("GET", "/whoami", cookie=f"session={laptop}").json["user"] == "carol"
    shop.call("POST", "/logout?everywhere=1")
    for cookie in (laptop, phone):
        assert shop.raw("GET", "/whoami", cookie=f"session={cookie}").json["user"] is None


def test_both_frameworks_answer_the_scenario_with_identical_bytes(clock: FakeClock) -> None:
    script = [
        ("GET", "/whoami", None), ("POST", "/cart/apple", None), ("POST", "/cart/pear", None),
        ("POST", "/login", {"user": "alice"}), ("POST", "/login", {"user": ""}),
        ("POST", "/login", ["not", "an", "object"]), ("DELETE", "/cart/apple", None),
        ("DELETE", "/cart/apple", None), ("POST", "/cart/bad%20name", None), ("GET", "/cart", None),
        ("GET", "/whoami", None), ("POST", "/logout", None), ("GET", "/whoami", None),
    ]
    transcripts = {}
    for framework in FRAMEWORKS:
        shop = ShopClient(framework, make_app(framework, config_for("memory://", clock)))
        transcripts[framework] = [
            (r.status, r.body, r.header("content-type"), len(r.set_cookies))
            for r in (shop.call(m, p, b) for m, p, b in script)
        ]
    assert transcripts["flask"] == transcripts["fastapi"]
