"""Hostile and broken cookies: each one gets a 200 and a fresh empty session — never a 500,
never someone else's session, never a record created for an unknown id."""

from __future__ import annotations

import json

import pytest

from sessionkit import SessionConfig, SessionEngine
from tests.support import (
    FRAMEWORKS,
    INSTANCE,
    KEY,
    FakeClock,
    ShopClient,
    call_asgi,
    call_wsgi,
    engine_of,
    make_app,
)

DAY = 86400.0
OTHER_KEY = "some-other-apps-secret-key-0123456789-xyz"


def mint(**settings: object) -> str:
    """A well-formed cookie value for a session that this app never stored."""
    config = SessionConfig(secret_key=KEY, instance_id=INSTANCE)
    engine = SessionEngine(config, **settings)  # type: ignore[arg-type]
    session = engine.load(None)
    session["user"] = "mallory"
    [cookie] = engine.commit(session).set_cookies
    return cookie.split(";")[0].split("=", 1)[1]


def flip(value: str, index: int) -> str:
    swapped = "B" if value[index] != "B" else "C"
    return value[:index] + swapped + value[index + 1:]


def bad_cookie_headers() -> dict[str, str]:
    unknown = mint()
    token = unknown.split(".")[0]
    return {
        "empty": "session=",
        "8kb": "session=" + "A" * 8192,
        "no-equals": "session",
        "only-equals": "session===",
        "spaces": "   session   =   x  ",
        "route-only": "session=.inst-a",
        "token-no-route": f"session={token}",
        "colon-separator": f"session={token}:inst-a",
        "comma-separator": f"session={token},inst-a",
        "double-dot": f"session={token}..inst-a",
        "trailing-dot": f"session={token}.",
        "uppercase-route": f"session={token}.INST-A",
        "underscore-route": f"session={token}.inst_a",
        "long-route": f"session={token}.{'a' * 64}",
        "short-token": f"session={token[:-1]}.inst-a",
        "long-token": f"session={token}A.inst-a",
        "tampered-first": f"session={flip(token, 0)}.inst-a",
        "tampered-tag": f"session={flip(token, 63)}.inst-a",
        "std-base64": f"session={token[:-2]}+/.inst-a",
        "padded": f"session={token[:-1]}=.inst-a",
        "other-key": f"session={mint(secret_key=OTHER_KEY)}",
        "unknown-id": f"session={unknown}",
        "other-instance": f"session={mint(instance_id='inst-b')}",
        "quoted-unknown": f'session="{unknown}"',
        "duplicates-all-bad": "session=a; session=b; session=c",
        "thousand-cookies": "; ".join(f"c{i}=v{i}" for i in range(1000)) + "; session=zzz",
        "tab": f"session={unknown}\t",
        "percent-escapes": "session=%00%0d%0a",
        "script": "session=<script>alert(1)</script>",
        "sql": "session=' OR 1=1 --",
        "json": 'session={"user":"admin"}',
        "null": "session=null",
        "flask-cookie": "session=eyJ1c2VyIjoiYWRtaW4ifQ.ZzZzZw.abcdefghijklmnopqrstuvwxyz0",
        "jwt-like": "session=eyJhbGciOiJub25lIn0.eyJ1c2VyIjoiYWRtaW4ifQ.",
    }


BAD = bad_cookie_headers()


@pytest.fixture(params=FRAMEWORKS)
def shop(request: pytest.FixtureRequest, clock: FakeClock) -> ShopClient:
    config = SessionConfig(secret_key=KEY, instance_id=INSTANCE, clock=clock)
    return ShopClient(request.param, make_app(request.param, config))


FRESH = {"instance": INSTANCE, "session_new": True, "store": "memory://", "user": None}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_cookie_yields_a_fresh_empty_session(shop: ShopClient, name: str) -> None:
    store = engine_of(shop.app).store
    reply = shop.raw("GET", "/whoami", cookie=BAD[name])
    assert reply.status == 200, reply.body
    assert reply.json == FRESH
    assert reply.set_cookies == []
    assert shop.raw("GET", "/cart", cookie=BAD[name]).json == {"cart": []}
    assert len(store) == 0  # an unknown id never creates a record


def test_a_bad_cookie_beside_the_real_one_does_not_hide_it(shop: ShopClient) -> None:
    shop.call("POST", "/login", {"user": "alice"})
    real = shop.cookie
    for header in (f"session=garbage; session={real}", f"session={real}; session=garbage",
                   f"session={mint()}; session={real}"):
        assert shop.raw("GET", "/whoami", cookie=header).json["user"] == "alice"


def test_expired_id_gives_a_fresh_session_and_writes_nothing(
    shop: ShopClient, clock: FakeClock
) -> None:
    shop.call("POST", "/cart/apple")
    cookie = shop.cookie
    clock.advance(15 * DAY)
    reply = shop.raw("GET", "/whoami", cookie=f"session={cookie}")
    assert reply.status == 200 and reply.json == FRESH and reply.set_cookies == []
    assert len(engine_of(shop.app).store) == 0


def test_a_write_after_a_bad_cookie_starts_a_new_session(shop: ShopClient) -> None:
    reply = shop.raw("POST", "/cart/apple", cookie=BAD["unknown-id"])
    assert reply.status == 200 and reply.json == {"cart": ["apple"]}
    [cookie] = reply.set_cookies
    assert BAD["unknown-id"].split("=", 1)[1] not in cookie  # never adopts the client's id


RAW_HEADERS = {
    "non-ascii": [(b"cookie", "session=ñandú.inst-a".encode())],
    "latin-1-bytes": [(b"cookie", b"session=\xff\xfe\xfd")],
    "nul": [(b"cookie", b"session=\x00abc")],
    "cr-lf": [(b"cookie", b"session=abc\r\nX-Injected: 1")],
    "two-cookie-headers": [(b"cookie", b"session=a"), (b"cookie", b"session=b")],
    "64kb-header": [(b"cookie", b"x=" + b"y" * 65536)],
}


@pytest.mark.parametrize("name", sorted(RAW_HEADERS))
def test_byte_level_garbage_through_asgi(name: str, clock: FakeClock) -> None:
    app = make_app("fastapi", SessionConfig(secret_key=KEY, instance_id=INSTANCE, clock=clock))
    status, headers, body = call_asgi(app, "/whoami", RAW_HEADERS[name])
    assert status == 200
    assert json.loads(body) == FRESH
    assert not [h for h in headers if h[0] == b"set-cookie"]


@pytest.mark.parametrize("name", sorted(RAW_HEADERS))
def test_byte_level_garbage_through_wsgi(name: str, clock: FakeClock) -> None:
    app = make_app("flask", SessionConfig(secret_key=KEY, instance_id=INSTANCE, clock=clock))
    cookie = ", ".join(v.decode("latin-1") for _, v in RAW_HEADERS[name])  # as servers join
    status, headers, body = call_wsgi(app, "/whoami", cookie)
    assert status.startswith("200")
    assert json.loads(body) == FRESH
    assert not [h for h in headers if h[0].lower() == "set-cookie"]
