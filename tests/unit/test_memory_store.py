"""The memory store: O(1) LRU, expiry, user index, atomic delta merges under threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sessionkit.stores.base import Create, Delete, DeleteUser, Load, Record, Touch, Update
from sessionkit.stores.memory import MemoryStore

IDLE, ABSOLUTE = 100.0, 1000.0


def put(store: MemoryStore, key: str, now: float = 0.0, user: str | None = None,
        fields: dict[str, str] | None = None) -> None:
    data = {"a": "1"} if fields is None else fields
    store.execute(Create(key, Record(data, now, now + IDLE, now, user), ABSOLUTE))


def load(store: MemoryStore, key: str, now: float = 0.0) -> Record | None:
    result: Record | None = store.execute(Load(key, now, IDLE, ABSOLUTE))
    return result


def update(store: MemoryStore, key: str, changes: dict[str, str], now: float = 1.0,
           removed: tuple[str, ...] = ()) -> bool:
    op = Update(key, changes, removed, None, False, now, now + IDLE, {}, 1, ABSOLUTE)
    result: bool = store.execute(op)
    return result


def test_load_slides_expiry_and_reports_the_previous_access() -> None:
    store = MemoryStore()
    put(store, "k", now=0)
    first = load(store, "k", now=50)
    assert first is not None
    assert first.accessed_at == 0
    second = load(store, "k", now=120)  # within idle of the slide at 50
    assert second is not None
    assert second.accessed_at == 50
    expired = load(store, "k", now=221)  # idle since 120: handed over for the engine to judge
    assert expired is not None
    assert expired.expires_at == 220
    assert load(store, "k", now=222).expires_at == 220  # type: ignore[union-attr]  # no slide


def test_absolute_limit_caps_the_slide() -> None:
    store = MemoryStore()
    put(store, "k", now=0)
    now = 0.0
    while now < 950:
        now += 90
        assert load(store, "k", now=now) is not None
    last = load(store, "k", now=1000)
    assert last is not None
    assert last.expires_at == 1000  # capped at created + absolute: expired now


def test_lru_evicts_the_least_recently_used_beyond_max_sessions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore(max_sessions=3)
    for key in "abc":
        put(store, key)
    load(store, "a")  # a is now most recent
    put(store, "d")
    assert load(store, "b") is None
    assert all(load(store, k) is not None for k in "acd")
    assert store.evicted_live == 1
    assert "memory store full" in caplog.text


def test_expired_entries_are_swept_on_write() -> None:
    store = MemoryStore()
    put(store, "old", now=0)
    put(store, "new", now=500)
    assert "old" not in store._records


def test_update_merges_a_delta_and_never_resurrects() -> None:
    store = MemoryStore()
    put(store, "k", fields={"a": "1", "b": "2"})
    assert update(store, "k", {"c": "3"}, removed=("a",))
    record = load(store, "k", now=2)
    assert record is not None
    assert record.fields == {"b": "2", "c": "3"}
    assert record.version == 2
    store.execute(Delete("k"))
    assert update(store, "k", {"d": "4"}) is False
    assert load(store, "k") is None


def test_loaded_snapshot_is_not_changed_by_a_later_write() -> None:
    store = MemoryStore()
    put(store, "k")
    snapshot = load(store, "k")
    assert snapshot is not None
    update(store, "k", {"a": "2"})
    assert snapshot.fields == {"a": "1"}


def test_touch_and_delete_user() -> None:
    store = MemoryStore()
    put(store, "k1", user="alice")
    put(store, "k2", user="alice")
    put(store, "k3", user="bob")
    assert store.execute(Touch("k1", 10, 10 + IDLE)) is True
    assert store.execute(Touch("nope", 10, 10 + IDLE)) is False
    assert store.delete_user_sessions("alice") == 2
    assert asyncio.run(store.adelete_user_sessions("alice")) == 0
    assert load(store, "k1") is None
    assert load(store, "k3") is not None
    assert store.execute(DeleteUser("nobody")) == 0


def test_threads_changing_different_keys_lose_nothing() -> None:
    store = MemoryStore()
    put(store, "k", fields={})
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(200):
            assert update(store, "k", {f"t{n}-{i}": "1"})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = load(store, "k", now=2)
    assert record is not None
    assert len(record.fields) == 1600
    assert record.version == 1601


def test_from_url_options() -> None:
    assert MemoryStore.from_url("memory://?max_sessions=7").max_sessions == 7
    assert MemoryStore.from_url("memory://").max_sessions == 100_000
