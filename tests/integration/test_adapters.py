"""The adapters (Flask, ASGI/Starlette, bare WSGI) over the same engine: the I/O each request
costs, store-down answers, regeneration races, websockets, key rotation."""

from __future__ import annotations

import pytest

from tests.apps import FlakyStore, RecordingStore, make
from tests.support import KEY, OLD_KEY, FakeClock, ShopClient

KINDS = ["flask", "fastapi", "wsgi"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client(kind: str, **settings: object) -> ShopClient:
    settings.setdefault("secret_key", KEY)
    settings.setdefault("instance_id", "inst-a")
    return ShopClient(kind, make(kind, **settings))


def test_store_io_per_request(kind: str) -> None:
    store = RecordingStore()
    shop = client(kind, store=store)
    shop.call("GET", "/noop")
    shop.call("GET", "/get")
    assert store.ops == []  # no cookie: no I/O at all, even when the session is read
    shop.call("POST", "/set/a")
    assert store.ops == ["create"]
    store.ops.clear()
    shop.call("GET", "/get")
    assert store.ops == ["load"]  # a read: one operation, sliding included
    store.ops.clear()
    shop.call("POST", "/set/b")
    assert store.ops == ["load", "update"]  # a write: the delta only
    store.ops.clear()
    shop.call("POST", "/set/b")
    assert store.ops == ["load"]  # the same value again is not a change


def test_a_store_that_cannot_slide_on_read_is_touched_rarely(kind: str, clock: FakeClock) -> None:
    store = RecordingStore(slides_on_load=False)
    shop = client(kind, store=store, clock=clock, idle_timeout=1000)
    shop.call("POST", "/set/a")
    store.ops.clear()
    for _ in range(5):
        clock.advance(10)  # 50 s in all: under 10% of the idle timeout
        shop.call("GET", "/get")
    assert store.ops == ["load"] * 5
    clock.advance(60)
    shop.call("GET", "/get")
    assert store.ops[-2:] == ["load", "touch"]


def test_vary_cookie_is_merged_with_the_apps_vary(kind: str) -> None:
    shop = client(kind)
    reply = shop.call("POST", "/set/a")
    vary = reply.headers_named("vary")
    assert len(vary) == 1
    assert "Cookie" in vary[0]
    if kind == "wsgi":
        assert vary[0] == "Accept, Cookie"
    assert shop.call("GET", "/noop").header("vary") in (None, "Accept")


def test_store_down_gives_503_with_retry_after_then_recovers(kind: str) -> None:
    store = FlakyStore()
    shop = client(kind, store=store)
    shop.call("POST", "/set/cart")
    store.down = True
    reply = shop.call("GET", "/get")
    assert reply.status == 503
    assert reply.header("retry-after") == "3"
    assert reply.set_cookies == []
    assert shop.call("GET", "/noop").status == 200  # no session used: served
    store.down = False
    reply = shop.call("GET", "/get")
    assert reply.status == 200
    assert reply.json == {"cart": True}  # nothing was lost


def test_store_failing_at_commit_gives_503_not_a_silent_loss(kind: str) -> None:
    store = FlakyStore()
    shop = client(kind, store=store)
    shop.call("POST", "/set/a")
    store.fail_on = frozenset({"update"})
    reply = shop.call("POST", "/set/b")
    assert reply.status == 503
    assert reply.header("retry-after") == "3"
    store.fail_on = frozenset()
    assert shop.call("GET", "/get").json == {"a": True}


def test_request_with_the_pre_regenerate_id_cannot_resurrect_it(kind: str) -> None:
    shop = client(kind)
    shop.call("POST", "/set/a")
    old = shop.cookie
    shop.call("POST", "/regenerate")
    late = shop.raw("POST", "/set/late", cookie=f"session={old}")
    assert late.status == 200
    assert all(not c.startswith("session=;") for c in late.set_cookies)  # never a delete
    assert shop.call("GET", "/get").json == {"a": True}
    assert shop.raw("GET", "/get", cookie=f"session={old}").json == {}


def test_invalidate_then_write_starts_a_new_session(kind: str) -> None:
    shop = client(kind)
    shop.call("POST", "/set/a")
    old = shop.cookie
    reply = shop.call("POST", "/invalidate-then-write")
    [cookie] = reply.set_cookies
    assert not cookie.startswith("session=;")
    assert shop.cookie != old
    assert shop.call("GET", "/get").json == {"flash": "bye"}
    assert shop.raw("GET", "/get", cookie=f"session={old}").json == {}


def test_secret_rotation_keeps_sessions_and_moves_them_to_the_new_key(kind: str) -> None:
    store = RecordingStore()
    before = client(kind, store=store, secret_key=OLD_KEY)
    before.call("POST", "/set/cart")
    old_cookie = before.cookie
    rotated = client(kind, store=store, secret_key=[KEY, OLD_KEY])
    reply = rotated.raw("GET", "/get", cookie=f"session={old_cookie}")
    assert reply.json == {"cart": True}
    [reissued] = reply.set_cookies  # re-keyed under the current secret
    new_cookie = reissued.split(";")[0].split("=", 1)[1]
    assert rotated.raw("GET", "/get", cookie=f"session={new_cookie}").json == {"cart": True}
    assert rotated.raw("GET", "/get", cookie=f"session={old_cookie}").json == {}
    only_new = client(kind, store=store, secret_key=KEY)
    assert only_new.raw("GET", "/get", cookie=f"session={new_cookie}").json == {"cart": True}


def test_websocket_reads_the_session_and_saves_changes_to_an_existing_one() -> None:
    from starlette.testclient import TestClient

    store = RecordingStore()
    app = make("fastapi", secret_key=KEY, store=store)
    with TestClient(app) as http:
        http.post("/set/a")
        with http.websocket_connect("/ws") as ws:
            assert ws.receive_json() == {"a": True, "seen_ws": True}
        assert http.get("/get").json() == {"a": True, "seen_ws": True}
