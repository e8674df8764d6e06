"""Hybrid mode over Redis with server-assisted invalidation (``CLIENT TRACKING``): changes made
through one instance reach the copies of the others at once, not after ``near_cache_max_age``;
an instance's own writes keep its copies; a lost invalidation connection drops every copy and
comes back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from sessionkit import invalidations
from tests.hybrid_support import CONNECT_SECONDS, MAX_AGE, Browser, Instances
from tests.redis_servers import RedisProcesses, spare_ports
from tests.stores import REDIS_ENV, flush_redis
from tests.support import FakeClock, service_url


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


@pytest.fixture(params=["flask", "fastapi"])
def cluster(request: pytest.FixtureRequest, redis_url: str, clock: FakeClock
            ) -> Iterator[Instances]:
    instances = Instances(redis_url, clock, request.param)
    clock.advance(1)  # copies made from now on were confirmed while invalidations flowed
    yield instances
    instances.close()


def test_log_out_everywhere_reaches_every_instance_at_once(cluster: Instances) -> None:
    laptop, phone = Browser(), Browser()
    laptop.send(cluster["a"], "POST", "/login", {"user": "ada"})
    phone.send(cluster["b"], "POST", "/login", {"user": "ada"})
    assert phone.send(cluster["b"], "GET", "/whoami").json["user"] == "ada"  # b's copy
    laptop.send(cluster["a"], "POST", "/logout?everywhere=1")
    # No clock moved: b dropped its copy because Redis said the key changed.
    assert phone.send(cluster["b"], "GET", "/whoami").json["user"] is None
    assert cluster.near("b")["invalidated"] == 1


def test_a_write_through_b_reaches_a_copy_the_cookie_still_points_at(
    cluster: Instances,
) -> None:
    """Two tabs, two requests at once, the older cookie arriving last: the cookie names a and
    its stamp, but b wrote after. The cookie cannot tell; Redis can."""
    browser = Browser()
    browser.send(cluster["a"], "POST", "/cart/apple")
    older = browser.cookie
    assert browser.cart(cluster["a"]) == ["apple"]
    browser.send(cluster["b"], "POST", "/cart/pear")
    assert Browser(older).cart(cluster["a"]) == ["apple", "pear"]


def test_own_writes_keep_the_copy_and_watched_copies_outlive_max_age(
    cluster: Instances, clock: FakeClock,
) -> None:
    browser = Browser()
    a = cluster["a"]
    browser.send(a, "POST", "/cart/apple")
    browser.send(a, "POST", "/cart/pear")
    hits = cluster.near("a")["hit"]
    clock.advance(10 * MAX_AGE)
    assert browser.cart(a) == ["apple", "pear"]
    assert cluster.near("a")["hit"] == hits + 1
    assert cluster.near("a")["invalidated"] == 0


def test_own_writes_are_confirmed_by_the_records_version_not_by_reading_it(
    cluster: Instances, redis_url: str,
) -> None:
    """Redis tells every instance of every write, its own included: the writer keeps its
    copy after checking the record's version, without reading the whole session back."""
    browser = Browser()
    a = cluster["a"]
    browser.send(a, "POST", "/cart/apple")
    admin = redis.Redis.from_url(redis_url)
    try:
        before = _calls(admin, "hgetall")
        for fruit in ("pear", "plum", "fig"):
            browser.send(a, "POST", f"/cart/{fruit}")
            assert browser.cart(a)[-1] == fruit
        assert _calls(admin, "hgetall") == before
    finally:
        admin.close()
    assert cluster.near("a")["hit"] == 6  # each write's read, then each read: all copies
    assert cluster.near("a")["invalidated"] == 0


def _calls(admin: redis.Redis, command: str) -> int:
    stats = admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_lost_invalidation_connection_drops_copies_and_reconnects(
    cluster: Instances, redis_url: str, clock: FakeClock,
) -> None:
    laptop, phone = Browser(), Browser()
    laptop.send(cluster["a"], "POST", "/login", {"user": "ada"})
    phone.send(cluster["b"], "POST", "/login", {"user": "ada"})
    assert phone.cart(cluster["b"]) == []
    admin = redis.Redis.from_url(redis_url)
    try:
        db = str(admin.connection_pool.connection_kwargs.get("db", 0))
        listed = admin.client_list()  # every client of the server: other tests' too
        ids = [c["id"] for c in listed
               if c.get("name") == "sessionkit-invalidations" and c.get("db") == db]
        assert len(ids) == 3
        for client_id in ids:
            admin.client_kill_filter(_id=client_id)
    finally:
        admin.close()
    watcher = cluster.invalidations("b")
    deadline = time.monotonic() + CONNECT_SECONDS
    while watcher.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    while not watcher.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watcher.connected, "the watcher did not reconnect"
    # Every copy was dropped (an invalidation may have been missed): b reads the store.
    assert phone.send(cluster["b"], "GET", "/whoami").json["user"] == "ada"
    assert cluster.near("b")["invalidated"] == 1
    # And invalidations flow again.
    clock.advance(1)
    assert phone.send(cluster["b"], "GET", "/whoami").json["user"] == "ada"
    laptop.send(cluster["a"], "POST", "/logout?everywhere=1")
    assert phone.send(cluster["b"], "GET", "/whoami").json["user"] is None


def test_a_redis_restart_drops_every_copy_and_invalidations_resume(
    tmp_path: Path, clock: FakeClock,
) -> None:
    """Redis restarts empty (no persistence): no instance may serve a copy of a session the
    store no longer has, and invalidations flow again once it is back."""
    servers = RedisProcesses(tmp_path)
    (port,) = spare_ports(1)
    try:
        servers.start(port)
        cluster = Instances(f"redis://127.0.0.1:{port}/0", clock, count=2)
        try:
            clock.advance(1)
            phone = Browser()
            phone.send(cluster["b"], "POST", "/login", {"user": "ada"})
            assert phone.send(cluster["b"], "GET", "/whoami").json["user"] == "ada"
            servers.stop()
            servers.processes.clear()
            wait_for(lambda: not cluster.invalidations("b").connected, "the outage was noticed")
            servers.start(port)
            wait_for(lambda: cluster.invalidations("b").connected, "the watcher reconnected")
            clock.advance(1)
            # The store lost the session; b's copy went with the connection.
            assert phone.send(cluster["b"], "GET", "/whoami").json["user"] is None
            laptop, tablet = Browser(), Browser()
            laptop.send(cluster["a"], "POST", "/login", {"user": "bob"})
            tablet.send(cluster["b"], "POST", "/login", {"user": "bob"})
            assert tablet.send(cluster["b"], "GET", "/whoami").json["user"] == "bob"
            laptop.send(cluster["a"], "POST", "/logout?everywhere=1")
            assert tablet.send(cluster["b"], "GET", "/whoami").json["user"] is None
        finally:
            cluster.close()
    finally:
        servers.stop()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CONNECT_SECONDS * 3
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.02)


def test_rechecks_read_versions_in_one_round_trip_whatever_each_key_holds(
    redis_url: str,
) -> None:
    """The recheck's hand-packed commands stay in step with their answers: a key that is
    gone, of another type or without a version answers None (that copy goes), and the
    records after it still answer their own values; a Redis that cannot answer drops all."""
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.hset("probe:ok", mapping={"v": 7, "a": "12.5"})
        admin.set("probe:string", "x")
        admin.hset("probe:old", mapping={"a": "3.0"})  # written before versions existed
        admin.hset("probe:later", mapping={"v": 2, "a": "4.25"})
        probe = invalidations._Probe(redis_url)
        try:
            names = ["probe:ok", "probe:gone", "probe:string", "probe:old", "probe:later"]
            assert probe.versions(names) == [(7, 12.5), None, None, None, (2, 4.25)]
            assert probe.versions(["probe:later"]) == [(2, 4.25)]  # the connection kept step
        finally:
            probe.close()
    finally:
        admin.close()
    (port,) = spare_ports(1)
    assert invalidations._Probe(f"redis://127.0.0.1:{port}/0").versions(["a", "b"]) == [
        None, None]
