"""Moving a Starlette app from starsessions 2.x (RedisStore) to sessionkit on FastAPI with
nobody logged out: the real starsessions serves the shop against Redis, then the shop
restarts on sessionkit with ``migrate_from="starsessions+redis://..."``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from sessionkit import ConfigError, SessionEngine
from tests.peer_apps import (
    USERS,
    fill_on_starsessions,
    redis_client,
    sessionkit_fastapi,
    sessionkit_sessions,
    set_cookie,
    shop,
    wait_until_gone,
)
from tests.servers import serve_asgi
from tests.stores import REDIS_ENV, flush_redis
from tests.support import KEY, deletes_cookie, service_url

PREFIX = "shop.sessions:"


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


def fill(redis_url: str) -> dict[str, str]:
    return fill_on_starsessions(redis_url, PREFIX)


def source(redis_url: str) -> str:
    return f"starsessions+{redis_url}?prefix={PREFIX}"


def test_users_keep_logins_and_carts(redis_url: str) -> None:
    cookies = fill(redis_url)
    new = shop("fastapi", sessionkit_fastapi(store=redis_url, migrate_from=source(redis_url)))
    with redis_client(redis_url) as client:
        stored = json.loads(client.get(PREFIX + cookies["ann"]))
        assert set(stored) == {"user", "cart", "__metadata__"}  # starsessions' own format
        for user, old in cookies.items():
            first = new.raw("GET", "/whoami", cookie=f"session={old}")
            assert first.status == 200
            assert first.json == {"user": user, "cart": USERS[user]}
            ours = set_cookie(first)
            assert ours != f"session={old}"
            assert not client.exists(PREFIX + old)  # moved: gone from starsessions' store
            again = new.raw("GET", "/whoami", cookie=f"session={old}")
            assert again.json == first.json and set_cookie(again) == ours  # one session
            assert new.raw("GET", "/keys", cookie=ours).json == ["cart", "user"]  # no metadata
            added = new.raw("POST", "/cart/more", cookie=ours)
            assert added.json == {"cart": [*USERS[user], "more"]}
    assert sessionkit_sessions(redis_url) == len(cookies)
    ours = set_cookie(new.raw("GET", "/whoami", cookie=f"session={cookies['bo']}"))
    assert new.raw("POST", "/logout", cookie=ours).status == 200
    after = new.raw("GET", "/whoami", cookie=f"session={cookies['bo']}")
    assert after.json == {"user": None, "cart": []}  # the old cookie revives nothing


def test_the_session_keeps_its_creation_time(redis_url: str) -> None:
    cookies = fill(redis_url)
    with redis_client(redis_url) as client:
        created = json.loads(client.get(PREFIX + cookies["cy"]))["__metadata__"]["created"]
    engine = SessionEngine(store=redis_url, secret_key=KEY, migrate_from=source(redis_url))
    try:
        session = engine.load(f"session={cookies['cy']}")
        assert session.created_at.timestamp() == pytest.approx(created)  # absolute timeout
    finally:
        engine.close()


@pytest.mark.parametrize("kind", ["tampered", "unknown", "expired", "uppercase", "empty"])
def test_bad_cookies_get_a_fresh_session(kind: str, redis_url: str) -> None:
    cookies = fill(redis_url)
    old = cookies["ann"]
    value = {
        "tampered": old[:-1] + ("0" if old[-1] != "0" else "1"),
        "unknown": "0123456789abcdef" * 2,
        "expired": old,
        "uppercase": old.upper(),
        "empty": "''",  # what starsessions sets when it ends a session
    }[kind]
    with redis_client(redis_url) as client:
        if kind == "expired":
            wait_until_gone(client, PREFIX + old)
        new = shop("fastapi", sessionkit_fastapi(store=redis_url, migrate_from=source(redis_url)))
        reply = new.raw("GET", "/whoami", cookie=f"session={value}")
        assert reply.status == 200
        assert reply.json == {"user": None, "cart": []}
        assert bool(client.exists(PREFIX + old)) == (kind != "expired")
    assert sessionkit_sessions(redis_url) == 0


def test_unreadable_records_are_refused(redis_url: str, caplog: pytest.LogCaptureFixture
                                        ) -> None:
    sid = "0123456789abcdef0123456789abcdef"
    with redis_client(redis_url) as client:
        client.set(PREFIX + sid, b"\x80\x05not json", ex=60)
    new = shop("fastapi", sessionkit_fastapi(store=redis_url, migrate_from=source(redis_url)))
    assert new.raw("GET", "/whoami", cookie=f"session={sid}").json["user"] is None
    assert "unreadable" in caplog.text


def test_concurrent_first_requests_share_one_session(redis_url: str) -> None:
    cookies = fill(redis_url)
    app = sessionkit_fastapi(store=redis_url, migrate_from=source(redis_url))
    old = f"session={cookies['ann']}"
    with serve_asgi(app) as base:
        def put(n: int) -> tuple[int, str]:
            with httpx2.Client(base_url=base, timeout=30) as http:
                reply = http.post(f"/put/k{n:02d}", headers={"Cookie": old})
                return reply.status_code, reply.headers["set-cookie"].split(";")[0]

        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(put, range(20)))
        assert {status for status, _ in replies} == {200}
        [ours] = {cookie for _, cookie in replies}
        with httpx2.Client(base_url=base, timeout=30) as http:
            keys = http.get("/keys", headers={"Cookie": ours}).json()
    assert keys == sorted(["cart", "user", *(f"k{n:02d}" for n in range(20))])
    assert sessionkit_sessions(redis_url) == 1


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'key_prefix'.*prefix, "
                       r"socket_connect_timeout, socket_timeout"):
        SessionEngine(store="memory://", secret_key=KEY,
                      migrate_from="starsessions+redis://127.0.0.1/0?key_prefix=x")
    with pytest.raises(ConfigError, match="RedisStore"):
        SessionEngine(store="memory://", secret_key=KEY,
                      migrate_from="starsessions+postgresql://127.0.0.1/db")


def test_an_old_cookie_under_another_name_is_deleted_once_moved(redis_url: str) -> None:
    cookies = fill(redis_url)
    new = shop("fastapi", sessionkit_fastapi(store=redis_url, cookie_name="sid",
                                             migrate_from=source(redis_url)))
    reply = new.raw("GET", "/whoami", cookie=f"session={cookies['ann']}")
    assert reply.json["user"] == "ann"
    ours = set_cookie(reply, "sid")
    assert any(deletes_cookie(c) for c in reply.set_cookies)
    assert new.raw("GET", "/whoami", cookie=ours).json["user"] == "ann"
