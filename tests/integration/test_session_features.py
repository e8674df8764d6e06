"""What apps build on sessions, built in, through the example shop on both frameworks and every
store: a user's devices listed and signed out one by one or all but this one, "keep me signed
in" (a session's own lifetime), and fresh logins (pages that need a recent password)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sessionkit import SessionConfig
from tests.stores import ALL_STORES, StoreCase, iter_params, store_case
from tests.support import (
    FRAMEWORKS,
    INSTANCE,
    KEY,
    FakeClock,
    ShopClient,
    cookie_attributes,
    engine_of,
    make_app,
)

DAY = 86400.0
HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0 Mobile Safari/537.36")


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(iter_params(list(ALL_STORES))))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return store_case(request, tmp_path, request.param)


@pytest.fixture
def app(framework: str, case: StoreCase, clock: FakeClock) -> Any:
    config = SessionConfig(store=case.url, secret_key=KEY, instance_id=INSTANCE, clock=clock,
                           **case.settings)
    return make_app(framework, config)


def browser(framework: str, app: Any) -> ShopClient:
    """Another browser on the same app: its own cookie jar."""
    return ShopClient(framework, app)


def login(client: ShopClient, user: str, agent: str | None = None, **body: Any) -> None:
    headers = {"user_agent": agent} if agent else {}
    if headers:  # a browser that names itself: one request with that header, cookie kept
        reply = client.raw("POST", "/login", body={"user": user, **body}, **headers)
        assert reply.status == 200, reply.body
        [cookie] = [c for c in reply.set_cookies if c.startswith("session=")]
        jar_set(client, cookie.split(";")[0].split("=", 1)[1])
    else:
        assert client.call("POST", "/login", {"user": user, **body}).status == 200


def jar_set(client: ShopClient, value: str) -> None:
    """Put a session cookie in a client's jar (what a browser does with Set-Cookie)."""
    if client.framework == "fastapi":
        client._client.cookies.set("session", value)
    else:
        client._client.set_cookie("session", value, domain="localhost")


def listing(client: ShopClient) -> list[dict[str, Any]]:
    reply = client.call("GET", "/account/sessions")
    assert reply.status == 200, reply.body
    found: list[dict[str, Any]] = reply.json["sessions"]
    return found


def whoami(client: ShopClient) -> str | None:
    user: str | None = client.call("GET", "/whoami").json["user"]
    return user


# --- a user's devices -------------------------------------------------------------------------
def test_a_user_sees_their_sessions_and_signs_another_out(framework: str, app: Any) -> None:
    laptop, phone, stranger = (browser(framework, app) for _ in range(3))
    login(laptop, "alice", FIREFOX)
    login(phone, "alice", CHROME)
    login(stranger, "bob")
    phone_cookie = phone.cookie
    sessions = listing(laptop)
    assert sorted(s["description"] for s in sessions) == ["Chrome on Android",
                                                          "Firefox on Linux"]
    assert [s["current"] for s in sessions].count(True) == 1
    [here] = [s for s in sessions if s["current"]]
    [other] = [s for s in sessions if not s["current"]]
    assert here["description"] == "Firefox on Linux"
    for item in sessions:
        assert HANDLE_RE.match(item["handle"])
        assert item["instance"] == INSTANCE
        assert item["created_at"] <= item["last_seen"] < item["expires_at"]
        assert item["authenticated_at"] is not None
    assert listing(phone)[0]["handle"] in {s["handle"] for s in sessions}  # the same list

    reply = laptop.call("POST", "/account/sessions/revoke", {"handle": other["handle"]})
    assert reply.json == {"revoked": True}
    assert whoami(phone) is None  # at once, on the phone's next request
    assert phone.raw("GET", "/whoami", cookie=f"session={phone_cookie}").json["user"] is None
    assert whoami(laptop) == "alice"
    assert [s["handle"] for s in listing(laptop)] == [here["handle"]]
    assert whoami(stranger) == "bob"
    again = laptop.call("POST", "/account/sessions/revoke", {"handle": other["handle"]})
    assert again.status == 404  # ended already


def test_a_handle_ends_nothing_for_another_user_and_is_no_cookie(framework: str, app: Any,
                                                                 case: StoreCase) -> None:
    alice, bob = browser(framework, app), browser(framework, app)
    login(alice, "alice")
    login(bob, "bob")
    [mine] = listing(alice)
    handle = mine["handle"]
    assert bob.call("POST", "/account/sessions/revoke", {"handle": handle}).status == 404
    assert whoami(alice) == "alice"
    for forged in ("", "x" * 22, handle[:-1], handle + "A", "../" * 8, "é" * 22):
        assert bob.call("POST", "/account/sessions/revoke", {"handle": forged}).status == 404
    assert bob.call("POST", "/account/sessions/revoke", {"handle": 7}).status == 400
    # Not a cookie, and nothing of the cookie.
    assert handle not in (alice.cookie or "")
    as_cookie = alice.raw("GET", "/whoami", cookie=f"session={handle}")
    assert as_cookie.json["user"] is None and as_cookie.json["session_new"] is True
    if not case.client_side:  # not the store key either
        engine = engine_of(app)
        key, _ = engine.backend.ids.verify((alice.cookie or "").split(".")[0].split("~")[0])
        assert handle != key and handle not in key
    # Signed out, nobody's list is readable.
    anonymous = browser(framework, app)
    assert anonymous.call("GET", "/account/sessions").status == 401
    assert anonymous.call("POST", "/account/sessions/revoke", {"handle": handle}).status == 401
    assert whoami(alice) == "alice"


def test_sign_out_every_other_device(framework: str, app: Any) -> None:
    devices = [browser(framework, app) for _ in range(4)]
    for device in devices:
        login(device, "carol")
    bob = browser(framework, app)
    login(bob, "bob")
    keep = devices[1]
    assert len(listing(keep)) == 4
    assert keep.call("POST", "/account/sessions/revoke-others").json == {"revoked_others": True}
    assert [whoami(d) for d in devices] == [None, "carol", None, None]
    [left] = listing(keep)
    assert left["current"] is True
    assert whoami(bob) == "bob"


def test_the_list_follows_logins_logouts_and_log_out_everywhere(framework: str, app: Any,
                                                                clock: FakeClock) -> None:
    one, two, three = (browser(framework, app) for _ in range(3))
    login(one, "dave")
    login(two, "dave")
    assert len(listing(one)) == 2
    two.call("POST", "/logout")
    assert len(listing(one)) == 1
    login(two, "dave")
    login(three, "dave")
    assert len(listing(three)) == 3
    login(three, "erin")  # the same browser, another user: no longer dave's
    assert len(listing(one)) == 2
    assert len(listing(three)) == 1
    assert one.call("POST", "/logout?everywhere=1").status == 200
    clock.advance(1)  # jwt://: sessions bound at the very instant of a log-out-everywhere end
    login(one, "dave")
    assert len(listing(one)) == 1  # two's session ended everywhere, one logged in again
    assert whoami(two) is None


def test_a_session_in_use_stays_listed_and_an_idle_one_leaves_the_list(
    framework: str, app: Any, clock: FakeClock
) -> None:
    """The list follows expiry: in client mode the revocation store's record of a token is
    refreshed as the token's expiry slides, and goes when the token would have."""
    used, forgotten = browser(framework, app), browser(framework, app)
    login(used, "nia")
    login(forgotten, "nia")
    for _ in range(3):  # used every 6 days: 18 days, past the 14-day idle timeout
        clock.advance(6 * DAY)
        assert whoami(used) == "nia"
    [left] = listing(used)
    assert left["current"] is True
    assert left["last_seen"] > left["created_at"]
    assert whoami(forgotten) is None


def test_the_devices_page_lists_and_signs_out_with_forms(framework: str, app: Any) -> None:
    laptop, phone = browser(framework, app), browser(framework, app)
    login(laptop, "fay", FIREFOX)
    login(phone, "fay", '<script>alert(1)</script> Firefox/1')
    page = laptop.call("GET", "/devices")
    assert page.status == 200 and (page.header("content-type") or "").startswith("text/html")
    html = page.body.decode()
    assert "Firefox on Linux" in html and 'data-this-device="1"' in html
    assert "<script>" not in html
    [other] = [s for s in listing(laptop) if not s["current"]]
    assert f'data-revoke="{other["handle"]}"' in html
    assert form_post(laptop, "/devices/revoke", {"handle": other["handle"]}) == 303
    assert whoami(phone) is None
    assert whoami(laptop) == "fay"
    login(phone, "fay")
    assert form_post(laptop, "/devices/revoke-others", {}) == 303
    assert whoami(phone) is None
    assert "Not logged in" in browser(framework, app).call("GET", "/devices").body.decode()


def form_post(client: ShopClient, path: str, fields: dict[str, str]) -> int:
    """Post a form as the page does (urlencoded, with the browser's cookie); the status."""
    from urllib.parse import urlencode

    body = urlencode(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if client.framework == "fastapi":
        response = client._client.post(path, content=body, headers=headers,
                                       follow_redirects=False)
        return int(response.status_code)
    return int(client._client.open(path, method="POST", data=body, headers=headers,
                                   base_url=client._base).status_code)


def test_client_mode_without_a_revocation_store_says_what_it_needs(framework: str,
                                                                   clock: FakeClock) -> None:
    app = make_app(framework, SessionConfig(store="jwt://", secret_key=KEY, clock=clock))
    client = browser(framework, app)
    login(client, "gus")
    for method, path in (("GET", "/account/sessions"), ("POST", "/account/sessions/revoke-others")):
        reply = client.call(method, path)
        assert reply.status == 501
        assert "revocation_store" in reply.json["error"]
    assert "revocation_store" in client.call("GET", "/devices").body.decode()
    assert whoami(client) == "gus"


# --- keep me signed in: a session's own lifetime ---------------------------------------------
def test_not_kept_signed_in_the_cookie_ends_with_the_browser_and_an_idle_hour(
    framework: str, app: Any, clock: FakeClock
) -> None:
    client = browser(framework, app)
    reply = client.call("POST", "/login", {"user": "hal", "remember": False})
    [cookie] = reply.set_cookies
    attributes = cookie_attributes(cookie)
    assert "max-age" not in attributes and "expires" not in attributes
    for _ in range(4):  # active every 50 minutes: alive after 3 hours and more
        clock.advance(50 * 60)
        assert whoami(client) == "hal"
    clock.advance(61 * 60)
    assert whoami(client) is None


def test_kept_signed_in_lasts_its_own_lifetime_within_the_configured_one(
    framework: str, case: StoreCase, clock: FakeClock
) -> None:
    config = SessionConfig(store=case.url, secret_key=KEY, clock=clock, cookie_persistent=False,
                           idle_timeout="14d", absolute_timeout="90d", **case.settings)
    client = browser(framework, make_app(framework, config))
    [cookie] = client.call("POST", "/login", {"user": "ivy", "remember": True}).set_cookies
    attributes = cookie_attributes(cookie)  # persistent although browser-session by default
    if "max-age" in attributes:
        assert int(attributes["max-age"]) == 30 * DAY
    else:
        assert "expires" in attributes
    for _ in range(5):  # active every 5 days: 25 days old
        clock.advance(5 * DAY)
        assert whoami(client) == "ivy"
    clock.advance(5 * DAY + 1)  # past its own 30 days, within the configured 90
    assert whoami(client) is None


def test_the_configured_maxima_bound_what_a_session_asks(
    framework: str, case: StoreCase, clock: FakeClock
) -> None:
    config = SessionConfig(store=case.url, secret_key=KEY, clock=clock, idle_timeout="10m",
                           absolute_timeout="20d", **case.settings)
    client = browser(framework, make_app(framework, config))
    [cookie] = client.call("POST", "/login", {"user": "jo", "remember": True}).set_cookies
    attributes = cookie_attributes(cookie)
    if "max-age" in attributes:  # 30 days asked, 20 configured
        assert int(attributes["max-age"]) == 20 * DAY
    clock.advance(11 * 60)  # the configured idle timeout still rules
    assert whoami(client) is None


# --- fresh logins ------------------------------------------------------------------------------
def test_a_page_that_needs_a_recent_password(framework: str, app: Any, clock: FakeClock) -> None:
    client = browser(framework, app)
    assert client.call("GET", "/account").status == 401
    login(client, "kim")
    fresh = client.call("GET", "/account")
    assert fresh.status == 200
    signed_in_at = fresh.json["authenticated_at"]
    clock.advance(4 * 60)
    client.call("POST", "/cart/apple")  # using the session does not refresh it
    assert client.call("GET", "/account").status == 200
    clock.advance(61)
    stale = client.call("GET", "/account")
    assert stale.status == 403 and stale.json["authenticated_at"] == signed_in_at
    assert client.call("POST", "/reauth", {"user": "mallory"}).status == 403
    assert client.call("GET", "/account").status == 403
    assert client.call("POST", "/reauth", {"user": "kim"}).status == 200
    again = client.call("GET", "/account")
    assert again.status == 200 and again.json["authenticated_at"] > signed_in_at
    assert listing(client)[0]["authenticated_at"] == again.json["authenticated_at"]
    client.call("POST", "/logout")
    assert client.call("GET", "/account").status == 401


# --- hybrid mode: copies on other instances -------------------------------------------------
@pytest.mark.parametrize("store_name", ["redis", "postgresql"])
@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_hybrid_a_device_signed_out_through_another_instance(
    kind: str, store_name: str, request: pytest.FixtureRequest, tmp_path: Path,
    clock: FakeClock
) -> None:
    """The phone's session has a copy on b; the laptop signs it out through a. With Redis
    invalidations b drops the copy at once; over SQL within ``near_cache_max_age``."""
    from tests.hybrid_support import MAX_AGE, Browser, Instances

    instances = Instances(store_case(request, tmp_path, store_name).url, clock, kind, count=2)
    try:
        clock.advance(1)
        laptop, phone = Browser(), Browser()
        laptop.send(instances["a"], "POST", "/login", {"user": "lea"})
        phone.send(instances["b"], "POST", "/login", {"user": "lea"})
        assert phone.send(instances["b"], "GET", "/whoami").json["user"] == "lea"  # b's copy
        sessions = laptop.send(instances["a"], "GET", "/account/sessions").json["sessions"]
        [other] = [s for s in sessions if not s["current"]]
        reply = laptop.send(instances["a"], "POST", "/account/sessions/revoke",
                            {"handle": other["handle"]})
        assert reply.json == {"revoked": True}
        if store_name != "redis":
            clock.advance(MAX_AGE)  # the stated bound without invalidations
        assert phone.send(instances["b"], "GET", "/whoami").json["user"] is None
        assert laptop.send(instances["b"], "GET", "/whoami").json["user"] == "lea"
        listed = laptop.send(instances["b"], "GET", "/account/sessions").json["sessions"]
        assert [s["current"] for s in listed] == [True]
    finally:
        instances.close()


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_hybrid_copies_carry_the_sessions_facts(kind: str, request: pytest.FixtureRequest,
                                                tmp_path: Path, clock: FakeClock) -> None:
    """A copy served from the near cache knows the login time and the session's own expiry,
    as the store does."""
    from tests.hybrid_support import Browser, Instances

    instances = Instances(store_case(request, tmp_path, "redis").url, clock, kind, count=2)
    try:
        clock.advance(1)
        user = Browser()
        user.send(instances["a"], "POST", "/login", {"user": "max", "remember": False})
        before = instances.near("a").get("hit", 0)
        assert user.send(instances["a"], "GET", "/account").status == 200
        assert instances.near("a").get("hit", 0) > before  # served from the copy
        clock.advance(61 * 60)  # its own idle hour, on the copy as in the store
        assert user.send(instances["a"], "GET", "/whoami").json["user"] is None
    finally:
        instances.close()
