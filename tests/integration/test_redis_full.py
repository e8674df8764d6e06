"""A Redis that is full under ``maxmemory-policy noeviction`` refuses writes: the request that
would write gets 503 with ``Retry-After`` and a ``store_error`` is counted — never a 500 — and
reads go on. A throwaway redis-server on a spare loopback port per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkit import SessionConfig
from tests.redis_servers import RedisProcesses, spare_ports
from tests.support import FRAMEWORKS, KEY, ShopClient, engine_of, make_app


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[str]:
    processes = RedisProcesses(tmp_path)
    (port,) = spare_ports(1)
    try:
        processes.start(port, "--maxmemory-policy", "noeviction")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        processes.stop()


def fill(url: str) -> None:
    """Make the server full: a limit below what it already uses (deterministic, unlike
    filling it up to the limit, where freed client buffers can bring it back under)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.config_set("maxmemory", 1)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("one-more", "x")
    finally:
        client.close()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_full_redis_answers_503_not_500(framework: str, full_redis: str) -> None:
    client = ShopClient(framework, make_app(framework, SessionConfig(store=full_redis,
                                                                     secret_key=KEY)))
    assert client.call("POST", "/cart/apple").json == {"cart": ["apple"]}
    fill(full_redis)
    reply = client.call("POST", "/cart/pear")
    assert reply.status == 503, reply.body[:200]
    assert reply.header("retry-after") == "5"
    assert client.call("GET", "/cart").json == {"cart": ["apple"]}  # reads still work
    assert engine_of(client.app).events.counts["store_error"] >= 1
