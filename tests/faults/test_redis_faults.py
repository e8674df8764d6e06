"""Redis faults on real redis-server processes (spare loopback ports, never the shared one):
killed with SIGKILL under load, and full of data under each eviction policy."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sessionkit import SessionConfig
from tests.apps import make
from tests.load import Load
from tests.redis_servers import RedisProcesses, spare_ports
from tests.servers import serve_asgi, serve_wsgi
from tests.support import KEY, ShopClient, make_app

CLIENTS = 50
FAST_FAILURE = "socket_timeout=1&socket_connect_timeout=1"
#: Redis writes its append-only log before it answers; a SIGKILL ends the process, not the
#: kernel's page cache, so every acknowledged write survives it without an fsync per write.
DURABLE = ("--appendonly", "yes", "--appendfsync", "no")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[RedisProcesses]:
    started = RedisProcesses(tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_sigkill_under_load_gives_503_then_recovers_with_nothing_lost(
    kind: str, processes: RedisProcesses, caplog: pytest.LogCaptureFixture
) -> None:
    [port] = spare_ports(1)
    processes.start(port, *DURABLE)
    url = f"redis://127.0.0.1:{port}/0?{FAST_FAILURE}"
    app = make(kind, secret_key=KEY, store=url, retry_after=2)
    serve = serve_asgi if kind == "fastapi" else serve_wsgi
    with serve(app) as base:
        load = Load(base, CLIENTS)
        load.open_sessions()
        load.start()
        try:
            time.sleep(1.0)
            before_kill = load.statuses[200]
            victim = processes.processes[-1]
            victim.kill()  # SIGKILL: no shutdown, no final write
            victim.wait(timeout=10)
            time.sleep(1.5)
            during = load.statuses
            processes.start(port, *DURABLE)  # the same data directory: it replays its log
            time.sleep(1.5)
        finally:
            load.finish()
        after = load.statuses
        lost = load.lost_keys()
        load.close()
        print(f"redis SIGKILL/{kind}: answers {dict(after)}")
        assert load.problems == []  # no 500, every 503 with Retry-After and no Set-Cookie
        assert before_kill > 0 and during[503] > 0  # the fault hit the load
        assert after[200] > during[200]  # and the service came back without a restart
        assert lost == {}  # every acknowledged key is in its session
    assert "unreadable session record" not in caplog.text


def _full_redis(processes: RedisProcesses, policy: str, *args: str) -> tuple[str, redis.Redis]:
    """A redis-server with ``policy`` and room for about 2 MB of data."""
    [port] = spare_ports(1)
    processes.start(port, "--maxmemory-policy", policy, *args)
    admin = redis.Redis(port=port, host="127.0.0.1")
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used + 2 * 1024 * 1024)
    return f"redis://127.0.0.1:{port}/0?{FAST_FAILURE}", admin


def _session_keys(admin: redis.Redis) -> list[bytes]:
    return [k for k in admin.keys("sessionkit:*") if not k.startswith(b"sessionkit:user:")]


def _fill(admin: redis.Redis, until_gone: bytes | None = None, limit: int = 2000) -> int:
    """Write 10 KB values with a TTL longer than a session's until ``until_gone`` is evicted, or
    until Redis refuses writes; return how many were written."""
    for n in range(limit):
        try:
            admin.set(f"filler:{n}", b"x" * 10240, ex=90 * 86400)
        except redis.exceptions.OutOfMemoryError:
            return n
        if until_gone is not None and not admin.exists(until_gone):
            return n
    raise AssertionError(f"{limit} writes neither evicted the session nor filled Redis")


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl"])
def test_an_evicted_session_behaves_as_expired_and_the_policy_is_warned_about(
    kind: str, policy: str, processes: RedisProcesses, caplog: pytest.LogCaptureFixture
) -> None:
    url, admin = _full_redis(processes, policy)
    shop = ShopClient(kind, make_app(kind, SessionConfig(store=url, secret_key=KEY)))
    assert shop.call("POST", "/login", {"user": "alice"}).status == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "maxmemory-policy" in r.getMessage()]
    assert len(warnings) == 1 and policy in warnings[0].getMessage()
    assert "noeviction" in warnings[0].getMessage()  # the fix is in the message
    shop.call("POST", "/cart/apple")
    [victim] = _session_keys(admin)

    _fill(admin, until_gone=victim)
    admin.flushdb()  # room again, so the next write is not evicted at once

    who = shop.call("GET", "/whoami")
    assert who.status == 200
    assert who.json["user"] is None and who.json["session_new"] is True
    assert who.set_cookies == []  # as for an expired session: nothing written, no cookie
    assert shop.call("GET", "/cart").json == {"cart": []}
    again = shop.call("POST", "/login", {"user": "alice"})
    assert again.status == 200 and again.set_cookies  # a fresh start works
    admin.close()


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_a_full_redis_without_eviction_answers_503_and_keeps_every_session(
    kind: str, processes: RedisProcesses, caplog: pytest.LogCaptureFixture
) -> None:
    url, admin = _full_redis(processes, "noeviction")
    shop = ShopClient(kind, make_app(kind, SessionConfig(store=url, secret_key=KEY)))
    assert shop.call("POST", "/login", {"user": "alice"}).status == 200
    assert "maxmemory-policy" not in caplog.text  # noeviction cannot lose a session
    [kept] = _session_keys(admin)

    _fill(admin)  # until Redis refuses writes (OOM)
    full = shop.call("POST", "/cart/apple")
    assert full.status == 503, full.body  # not a 500: the store cannot take writes now
    assert full.header("retry-after") == "5" and full.set_cookies == []
    assert shop.call("GET", "/whoami").json["user"] == "alice"  # reads still work
    newcomer = ShopClient(kind, shop.app)
    assert newcomer.call("POST", "/login", {"user": "bob"}).status == 503

    admin.delete(*admin.keys("filler:*"))
    assert admin.exists(kept)
    assert shop.call("POST", "/cart/apple").json == {"cart": ["apple"]}
    admin.close()


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_a_redis_that_refuses_config_is_used_without_the_check(
    kind: str, processes: RedisProcesses, caplog: pytest.LogCaptureFixture
) -> None:
    [port] = spare_ports(1)
    # As managed Redis services do: CONFIG is not allowed, everything else is.
    processes.start(port, "--maxmemory-policy", "allkeys-lru",
                    "--user", "default", "on", "nopass", "~*", "&*", "+@all", "-config")
    url = f"redis://127.0.0.1:{port}/0?{FAST_FAILURE}"
    shop = ShopClient(kind, make(kind, secret_key=KEY, store=url))
    assert shop.call("POST", "/set/a").status == 200
    assert shop.call("GET", "/get").json == {"a": True}
    assert "maxmemory-policy" not in caplog.text
    assert "refuses CONFIG GET" in caplog.text
