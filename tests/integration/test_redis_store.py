"""Redis specifics: commands per request, outages on a real redis-server, hostile records,
options, and the sync and async faces sharing one Redis."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench import redis_commands
from sessionkit import ConfigError, SessionEngine
from sessionkit.stores import open_store
from tests.apps import make
from tests.redis_servers import RedisProcesses, spare_ports
from tests.stores import REDIS_ENV, flush_redis
from tests.support import KEY, FakeClock, ShopClient, make_app, service_url

KINDS = ["flask", "fastapi"]


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url




@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own: its slow log records every client of a server, so
    commands are counted where nothing else runs."""
    processes = RedisProcesses(tmp_path)
    [port] = spare_ports(1)
    try:
        processes.start(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        processes.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_one_command_per_read_and_one_more_per_write(kind: str, private_redis: str) -> None:
    clock = FakeClock()
    shop = ShopClient(kind, make(kind, secret_key=KEY, store=private_redis, clock=clock,
                                 idle_timeout=1000))
    if kind == "fastapi":
        shop._client.__enter__()  # one event loop for all requests, as in production
    probe = redis.Redis.from_url(private_redis)
    try:
        redis_commands.start(probe)
        shop.call("POST", "/set/a")
        counts = {}
        steps = [("first write", "POST", "/set/b", 0),  # the server learns the script
                 ("read", "GET", "/get", 0), ("write", "POST", "/set/c", 0),
                 ("read after a tenth of idle", "GET", "/get", 100),
                 ("write after a tenth of idle", "POST", "/set/d", 100),
                 ("no cookie", "GET", "/noop", 0)]
        for label, method, path, wait in steps:
            if label == "no cookie":
                shop.forget_cookies()
            clock.advance(wait)
            redis_commands.sent(probe)  # from here
            assert shop.call(method, path).status == 200
            counts[label] = redis_commands.sent(probe)
        [key] = probe.keys("sessionkit:*")
        ttl = probe.pttl(key) / 1000
    finally:
        probe.close()
        if kind == "fastapi":
            shop._client.__exit__(None, None, None)
    # A write is the read and one script (which also slides the expiry), and so is a read that
    # slides the expiry; the first on a server sends the script itself after the server
    # answers that it does not know it.
    assert counts == {"first write": 3, "read": 1, "write": 2,
                      "read after a tenth of idle": 2, "write after a tenth of idle": 2,
                      "no cookie": 0}
    assert 999 <= ttl <= 1000  # slid by the last step: idle from then


def test_a_write_between_slides_keeps_the_deadline_in_force(private_redis: str) -> None:
    """Writes renew the TTL in the same steps as reads, not on every request: a write less
    than a tenth of idle after the last slide leaves the deadline (and the key's TTL) as
    they were, and the engine enforces that deadline exactly."""
    clock = FakeClock()
    shop = ShopClient("flask", make("flask", secret_key=KEY, store=private_redis, clock=clock,
                                    idle_timeout=1000))
    shop.call("POST", "/set/a")
    clock.advance(50)
    shop.call("POST", "/set/b")
    probe = redis.Redis.from_url(private_redis)
    [key] = probe.keys("sessionkit:*")
    assert 990 <= probe.pttl(key) / 1000 <= 1000  # still the TTL the creation set
    probe.close()
    clock.advance(950)  # 1000 s after the last slide, 950 after the last write
    assert shop.call("GET", "/get").json == {}


def test_keys_are_hashed_ids_under_the_prefix(redis_url: str) -> None:
    url = redis_url + ("&" if "?" in redis_url else "?") + "key_prefix=shop%3A"
    shop = ShopClient("flask", make("flask", secret_key=KEY, store=url))
    shop.call("POST", "/set/a")
    token = (shop.cookie or "").split(".")[0]
    probe = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in probe.keys("*")]
    probe.close()
    assert len(keys) == 1
    assert keys[0].startswith("shop:")
    assert token[:20] not in keys[0]  # the store never sees the id


@pytest.mark.parametrize(
    "plant",
    [
        lambda r, k: r.set(k, "a plain string"),  # WRONGTYPE for a hash command
        lambda r, k: r.hset(k, mapping={"f": "9", "c": "1", "e": "9e99", "d:x": "1"}),
        lambda r, k: r.hset(k, mapping={"f": "1", "c": "nan?", "e": "x"}),
        lambda r, k: r.hset(k, mapping={"f": "1", "c": "1", "e": "9e99", "d:x": b"\xff\xfe"}),
        lambda r, k: r.hset(k, mapping={"f": "1", "c": "1", "e": "9e99",
                                        "d:x": b"\x80\x04\x95pickle"}),
        lambda r, k: r.hset(k, mapping={"f": "1", "c": "1", "e": "9e99", "d:x": "1",
                                        "m": '{"xi": "60"}'}),
        lambda r, k: r.hset(k, mapping={"f": "1", "c": "1", "e": "9e99", "d:x": "1",
                                        "m": "not json"}),
    ],
    ids=["wrong-type", "unknown-format", "bad-numbers", "not-utf8", "pickle-in-field",
         "facts-of-the-wrong-type", "facts-not-json"],
)
def test_a_planted_or_garbled_record_gives_a_fresh_session(plant: object, redis_url: str) -> None:
    shop = ShopClient("fastapi", make("fastapi", secret_key=KEY, store=redis_url))
    shop.call("POST", "/set/a")
    probe = redis.Redis.from_url(redis_url)
    [key] = probe.keys("sessionkit:*")
    probe.delete(key)
    plant(probe, key)  # type: ignore[operator]
    probe.close()
    reply = shop.call("GET", "/get")
    assert reply.status == 200
    assert reply.json == {}


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith(("redis.",
                                                                        "sessionkit.stores.redis"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError, match=r"pip install 'sessionkit\[redis\]'"):
        open_store("redis://127.0.0.1:6379/0")


def test_secret_key_is_required_for_a_shared_store() -> None:
    with pytest.raises(ConfigError, match="secret_key is required with the redis:// store"):
        SessionEngine(store="redis://127.0.0.1:6379/0")


@pytest.mark.parametrize("url", [
    "redis+sentinel://127.0.0.1:26379", "redis+cluster://127.0.0.1:7000?colour=blue",
])
def test_bad_redis_urls_fail_at_startup(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_flask_and_fastapi_share_carts_through_one_redis(redis_url: str) -> None:
    from sessionkit import SessionConfig

    config = SessionConfig(store=redis_url, secret_key=KEY, instance_id="shared")
    fastapi = ShopClient("fastapi", make_app("fastapi", config))
    flask = ShopClient("flask", make_app("flask", config))
    fastapi.call("POST", "/cart/apple")
    cookie = f"session={fastapi.cookie}"
    assert flask.raw("POST", "/cart/pear", cookie=cookie).json == {"cart": ["apple", "pear"]}
    assert fastapi.call("GET", "/cart").json == {"cart": ["apple", "pear"]}


# --- a real redis-server that the tests stop and start --------------------------------------
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[RedisProcesses, int]]:
    processes = RedisProcesses(tmp_path)
    [port] = spare_ports(1)
    processes.start(port)
    try:
        yield processes, port
    finally:
        processes.stop()


def _pid(processes: RedisProcesses) -> int:
    return processes.processes[-1].pid


@pytest.mark.parametrize("kind", KINDS)
def test_outage_gives_503_then_recovers_without_restart(
    kind: str, own_redis: tuple[RedisProcesses, int]
) -> None:
    processes, port = own_redis
    url = f"redis://127.0.0.1:{port}/0?socket_timeout=0.5&socket_connect_timeout=0.5"
    shop = ShopClient(kind, make(kind, secret_key=KEY, store=url, retry_after=7))
    shop.call("POST", "/set/cart")

    os.kill(_pid(processes), signal.SIGSTOP)  # hung: every command times out
    try:
        started = time.monotonic()
        hung = shop.call("GET", "/get")
        assert hung.status == 503
        assert hung.header("retry-after") == "7"
        assert time.monotonic() - started < 5
        assert shop.call("GET", "/noop").status == 200
    finally:
        os.kill(_pid(processes), signal.SIGCONT)
    assert shop.call("GET", "/get").json == {"cart": True}  # nothing lost, no restart

    processes.processes[-1].kill()  # dead: connections refused
    processes.processes[-1].wait(timeout=10)
    down = shop.call("POST", "/set/more")
    assert down.status == 503
    assert down.set_cookies == []
    processes.start(port)  # back (empty: this server keeps nothing on disk)
    back = shop.call("POST", "/set/again")
    assert back.status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_closed_port_gives_503(kind: str) -> None:
    [port] = spare_ports(1)
    url = f"redis://127.0.0.1:{port}/0?socket_connect_timeout=0.5"
    shop = ShopClient(kind, make(kind, secret_key=KEY, store=url))
    shop.call("POST", "/set/a")  # no cookie yet: the write is the first I/O
    reply = shop.raw("GET", "/get", cookie="session=" + "A" * 64)
    assert reply.status in (200, 503)  # an unauthentic cookie never reaches the store
    written = shop.call("POST", "/set/a")
    assert written.status == 503
    assert written.header("retry-after") == "5"


def test_outage_log_line_has_no_password(own_redis: tuple[RedisProcesses, int],
                                         caplog: pytest.LogCaptureFixture) -> None:
    processes, port = own_redis
    processes.processes[-1].kill()
    processes.processes[-1].wait(timeout=10)
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0?socket_connect_timeout=0.5"
    shop = ShopClient("flask", make("flask", secret_key=KEY, store=url))
    assert shop.call("POST", "/set/a").status == 503
    assert "hunter2" not in caplog.text
    assert "503" in caplog.text


def test_unix_socket_url(tmp_path: Path) -> None:
    processes = RedisProcesses(tmp_path)
    [port] = spare_ports(1)
    socket_path = tmp_path / "redis.sock"
    processes.start(port, "--unixsocket", str(socket_path), "--unixsocketperm", "700")
    try:
        shop = ShopClient("flask", make("flask", secret_key=KEY, store=f"unix://{socket_path}?db=2"))
        shop.call("POST", "/set/a")
        assert shop.call("GET", "/get").json == {"a": True}
        probe = redis.Redis(unix_socket_path=str(socket_path), db=2)
        assert len(probe.keys("sessionkit:*")) == 1
        probe.close()
    finally:
        processes.stop()
