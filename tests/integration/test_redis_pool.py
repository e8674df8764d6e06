"""The async Redis pool waits for a free connection instead of refusing one (a burst on a
healthy Redis must not become 503s), never opens more than ``max_connections``, and gives up
within the store's deadline (503, not a hang) when no connection comes back. Real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from sessionkit.errors import StoreUnavailable
from sessionkit.stores import open_store
from sessionkit.stores.base import Load
from tests.stores import REDIS_ENV, flush_redis
from tests.support import service_url


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def test_a_burst_beyond_the_pool_waits_and_every_operation_answers(redis_url: str) -> None:
    store = open_store(_with(redis_url, "max_connections=4"))

    async def burst() -> tuple[list[object], int]:
        now = time.time()
        found = await asyncio.gather(*(store.aexecute(Load(f"missing-{i}", now, 60, 3600))
                                       for i in range(200)))
        pool = store._async().connection_pool  # type: ignore[attr-defined]
        opened = len(pool._available_connections) + len(pool._in_use_connections)
        await store.aclose()
        return found, opened

    found, opened = asyncio.run(burst())
    assert found == [None] * 200  # 200 answers, none refused
    assert 1 <= opened <= 4


def test_no_connection_back_within_the_deadline_is_an_outage_not_a_hang(redis_url: str) -> None:
    store = open_store(_with(redis_url, "max_connections=2&deadline=0.3"))

    async def starved() -> float:
        pool = store._async().connection_pool  # type: ignore[attr-defined]
        held = [await pool.get_connection() for _ in range(2)]
        started = time.monotonic()
        try:
            with pytest.raises(StoreUnavailable):
                await store.aexecute(Load("missing", time.time(), 60, 3600))
            return time.monotonic() - started
        finally:
            for connection in held:
                await pool.release(connection)
            await store.aclose()

    assert asyncio.run(starved()) < 2.0


def test_a_connection_given_back_is_taken_by_the_waiting_operation(redis_url: str) -> None:
    store = open_store(_with(redis_url, "max_connections=1&deadline=3"))

    async def handed_over() -> object:
        pool = store._async().connection_pool  # type: ignore[attr-defined]
        held = await pool.get_connection()
        waiting = asyncio.ensure_future(store.aexecute(Load("missing", time.time(), 60, 3600)))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # it waits rather than being refused
        await pool.release(held)
        result = await asyncio.wait_for(waiting, 2)
        await store.aclose()
        return result

    assert asyncio.run(handed_over()) is None
