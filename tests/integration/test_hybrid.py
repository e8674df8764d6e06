"""Hybrid mode across instances over one real Redis and one real PostgreSQL: reads are served
from the near cache only when provably current, writes go through, nothing is lost when an
instance dies, and destroying sessions reaches the other instances within the stated bound."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.errors import ConfigError
from tests.hybrid_support import MAX_AGE, Browser, Instances, engine
from tests.stores import iter_params, store_url_for
from tests.support import KEY, FakeClock, ShopClient, make_app

STORES = ["redis", "postgresql"]


@pytest.fixture(params=list(iter_params(STORES)))
def store(request: pytest.FixtureRequest, tmp_path: object) -> str:
    return store_url_for(request, tmp_path, request.param)  # type: ignore[arg-type]


@pytest.fixture(params=["flask", "fastapi"])
def cluster(request: pytest.FixtureRequest, store: str, clock: FakeClock
            ) -> Iterator[Instances]:
    instances = Instances(store, clock, request.param)
    yield instances
    instances.close()


def test_reads_on_the_routed_instance_cost_no_store_round_trip(cluster: Instances) -> None:
    browser = Browser()
    a = cluster["a"]
    browser.send(a, "POST", "/cart/apple")
    assert browser.route == "a"
    stem = browser.cookie.rsplit(".", 1)[0] if browser.cookie else ""
    token, _, stamp = stem.partition("~")
    assert len(token) == 64 and len(stamp) == 8  # <id>~<stamp>.<instance>
    ops = cluster.store_ops("a")
    for _ in range(5):
        assert browser.cart(a) == ["apple"]
    assert cluster.store_ops("a") == ops  # five reads, zero store operations
    assert cluster.near("a")["hit"] == 5


def test_every_write_goes_through_and_replaces_the_stamp(cluster: Instances) -> None:
    browser = Browser()
    a = cluster["a"]
    browser.send(a, "POST", "/cart/apple")
    first = browser.cookie
    browser.send(a, "POST", "/cart/pear")
    assert browser.cookie != first and browser.route == "a"
    # The store has it: a plain shared-mode engine (no near cache) reads the same cart.
    assert Browser(browser.cookie).cart(plain_instance(cluster, "z")) == ["apple", "pear"]


def test_a_write_through_b_is_never_hidden_by_a_copy(cluster: Instances) -> None:
    browser = Browser()
    a, b = cluster["a"], cluster["b"]
    browser.send(a, "POST", "/cart/apple")
    assert browser.cart(a) == ["apple"]  # a holds a copy
    browser.send(b, "POST", "/cart/pear")  # misrouted: the write goes through b
    assert browser.route == "b"
    # The balancer sends the client home to a, but the cookie names b now: a reads the store.
    assert browser.cart(a) == ["apple", "pear"]
    assert cluster.near("a")["route_elsewhere"] == 1
    # a re-issued the cookie naming itself, and from then on its refreshed copy hits.
    assert browser.route == "a"
    hits = cluster.near("a")["hit"]
    assert browser.cart(a) == ["apple", "pear"]
    assert cluster.near("a")["hit"] == hits + 1


def test_a_write_on_a_copy_made_stale_elsewhere_leaves_no_stale_copy(
    cluster: Instances, clock: FakeClock,
) -> None:
    """Two tabs: the older cookie adds to the cart through b, then proves who the user is
    through a, whose copy predates b's write. The store merges both; a may keep a copy of the
    result only if it knows it exactly (the record's version says whether anyone wrote since
    its copy was made), else the next read goes to the store."""
    browser = Browser()
    a, b = cluster["a"], cluster["b"]
    browser.send(a, "POST", "/login", {"user": "ada"})
    browser.send(a, "POST", "/cart/apple")
    older = browser.cookie
    assert browser.cart(a) == ["apple"]  # a holds a copy
    Browser(older).send(b, "POST", "/cart/pear")
    clock.advance(1)
    tab = Browser(older)
    assert tab.send(a, "POST", "/reauth", {"user": "ada"}).status == 200  # a write through a
    assert tab.route == "a"
    for _ in range(2):
        assert tab.cart(a) == ["apple", "pear"]


def test_a_client_bounced_a_b_a_sees_its_latest_data(cluster: Instances) -> None:
    browser = Browser()
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    expected: list[str] = []
    for step, shop in enumerate([a, b, a, a, c, b, a, c, c, a]):
        item = f"item{step}"
        browser.send(shop, "POST", f"/cart/{item}")
        expected.append(item)
        for reader in (a, b, c, shop):
            assert browser.cart(reader) == expected


def test_worker_processes_of_one_instance_never_serve_each_others_stale_copies(
    store: str, clock: FakeClock,
) -> None:
    """``gunicorn -w 2``: two processes answer as instance a, each with its own copies. The
    route cannot tell them apart; the stamp can."""
    workers = [Instances(store, clock, count=1) for _ in range(2)]
    try:
        browser = Browser()
        expected: list[str] = []
        for step in range(6):
            worker = workers[step % 2]["a"]
            expected.append(f"item{step}")
            browser.send(worker, "POST", f"/cart/item{step}")
            for reader in (workers[0]["a"], workers[1]["a"]):
                assert browser.cart(reader) == expected
        assert browser.route == "a"
    finally:
        for cluster in workers:
            cluster.close()


def test_an_instance_killed_loses_nothing(cluster: Instances) -> None:
    browser = Browser()
    browser.send(cluster["a"], "POST", "/login", {"user": "ada"})
    browser.send(cluster["a"], "POST", "/cart/apple")
    cluster.kill("a")
    # The restarted instance has an empty cache: the store has everything.
    assert browser.cart(cluster["a"]) == ["apple"]
    assert cluster.near("a")["not_cached"] == 1
    # And so does any other instance, if the balancer moves the client instead.
    cluster.kill("a")
    assert browser.cart(cluster["b"]) == ["apple"]
    assert browser.send(cluster["b"], "GET", "/whoami").json["user"] == "ada"


def test_invalidate_through_b_is_immediate_for_the_clients_cookie(
    cluster: Instances, clock: FakeClock
) -> None:
    browser = Browser()
    a, b = cluster["a"], cluster["b"]
    browser.send(a, "POST", "/login", {"user": "ada"})
    browser.send(a, "POST", "/cart/apple")
    stolen = browser.cookie
    browser.send(b, "POST", "/logout")
    assert browser.cookie is None  # the client's own cookie is gone at once
    assert browser.cart(a) == []
    # A copy of the destroyed session on a serves a replayed cookie at most MAX_AGE longer.
    clock.advance(MAX_AGE)
    assert Browser(stolen).send(a, "GET", "/whoami").json["user"] is None


def test_invalidate_through_the_routed_instance_drops_its_copy_at_once(
    cluster: Instances,
) -> None:
    browser = Browser()
    a = cluster["a"]
    browser.send(a, "POST", "/login", {"user": "ada"})
    stolen = browser.cookie
    browser.send(a, "POST", "/logout")
    assert Browser(stolen).send(a, "GET", "/whoami").json["user"] is None


def test_regenerate_through_b_reaches_a_within_the_bound(
    cluster: Instances, clock: FakeClock
) -> None:
    browser = Browser()
    a, b = cluster["a"], cluster["b"]
    browser.send(a, "POST", "/cart/apple")
    planted = browser.cookie
    assert browser.cart(a) == ["apple"]
    browser.send(b, "POST", "/login", {"user": "ada"})  # regenerate(): a new id
    assert browser.cookie is not None and browser.cookie != planted
    assert browser.cart(a) == ["apple"]  # the new id is read from the store: nothing lost
    assert browser.send(a, "GET", "/whoami").json["user"] == "ada"
    clock.advance(MAX_AGE)
    old = Browser(planted)
    assert old.send(a, "GET", "/whoami").json == {**old.send(a, "GET", "/whoami").json,
                                                  "session_new": True}


def test_log_out_everywhere(cluster: Instances, clock: FakeClock) -> None:
    laptop, phone, tablet = Browser(), Browser(), Browser()
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    for browser, shop in ((laptop, a), (phone, b), (tablet, a)):
        browser.send(shop, "POST", "/login", {"user": "ada"})
        assert browser.send(shop, "GET", "/whoami").json["user"] == "ada"
    # Through a: a's own copies go at once.
    laptop.send(a, "POST", "/logout?everywhere=1")
    assert tablet.send(a, "GET", "/whoami").json["user"] is None
    # phone's copy lives on b, which learns of it once its copy is MAX_AGE old.
    clock.advance(MAX_AGE)
    assert phone.send(b, "GET", "/whoami").json["user"] is None
    assert phone.send(c, "GET", "/whoami").json["user"] is None


def test_sliding_expiry_stays_alive_in_the_store_without_a_write_per_read(
    cluster: Instances, clock: FakeClock
) -> None:
    idle = 14 * 86400.0
    browser = Browser()
    a = cluster["a"]
    browser.send(a, "POST", "/cart/apple")
    for _ in range(30):  # a read every 0.9 idle timeouts/20: far past the idle timeout
        clock.advance(idle * 0.045)
        assert browser.cart(a) == ["apple"]
    # Everything past MAX_AGE was confirmed against the store; the store slid the expiry.
    assert Browser(browser.cookie).cart(cluster["b"]) == ["apple"]


def test_absolute_expiry_is_exact_on_a_copy(store: str, clock: FakeClock) -> None:
    cluster = Instances(store, clock, count=1, settings={"near_cache_max_age": "365d"})
    try:
        browser = Browser()
        a = cluster["a"]
        browser.send(a, "POST", "/cart/apple")
        created = clock.now
        for moment in (10, 20, 30):  # days; the idle timeout is 14, the absolute one 30
            clock.now = created + moment * 86400.0 - (1 if moment == 30 else 0)
            assert browser.cart(a) == ["apple"]
        assert cluster.near("a")["hit"] == 3  # served by the copy, touched in the store
        clock.advance(1)
        assert browser.cart(a) == []
    finally:
        cluster.close()


def test_metrics_count_hits_and_misses_by_reason(store: str, clock: FakeClock) -> None:
    cluster = Instances(store, clock, settings={"near_cache_size": 2})
    try:
        a, b = cluster["a"], cluster["b"]
        browsers = [Browser() for _ in range(3)]
        for browser in browsers:
            browser.send(a, "POST", "/cart/apple")
        browsers[1].cart(a)  # hit
        browsers[0].cart(a)  # evicted by the third session (size 2)
        other = Browser(browsers[1].cookie)
        other.send(b, "GET", "/cart")  # route_elsewhere: b reads the store
        stale = browsers[1].cookie or ""
        browsers[1].send(a, "POST", "/cart/pear")
        Browser(stale).cart(a)  # an older stamp than a's copy
        clock.advance(MAX_AGE)
        browsers[1].cart(a)  # copy older than MAX_AGE
        cluster.kill("a")
        browsers[2].cart(cluster["a"])  # nothing cached after a restart
        text = cluster["b"].raw("GET", "/metrics").body.decode()
        assert 'sessionkit_near_cache_total{instance="b",mode="hybrid",result="hit"' in text
        from prometheus_client import CollectorRegistry, generate_latest

        from sessionkit.prometheus import register

        registry = CollectorRegistry()
        register(engine(cluster["b"]), registry)
        exported = generate_latest(registry).decode()
        assert 'sessionkit_near_cache_total{instance="b",mode="hybrid",result="route_elsewhere"' \
            in exported
        assert cluster.near("b")["route_elsewhere"] == 1
        assert cluster.near("a")["not_cached"] == 1
    finally:
        cluster.close()


def test_metrics_reasons_before_a_restart(store: str, clock: FakeClock) -> None:
    cluster = Instances(store, clock, count=2, settings={"near_cache_size": 2})
    try:
        a = cluster["a"]
        browsers = [Browser() for _ in range(3)]
        for browser in browsers:
            browser.send(a, "POST", "/cart/apple")
        assert browsers[1].cart(a) == ["apple"]
        assert browsers[0].cart(a) == ["apple"]  # its copy was evicted by the third
        stale = browsers[1].cookie or ""
        browsers[1].send(a, "POST", "/cart/pear")
        assert Browser(stale).cart(a) == ["apple", "pear"]  # stamp older than the copy's
        clock.advance(MAX_AGE)
        assert browsers[0].cart(a) == ["apple"]  # copy older than MAX_AGE: re-read
        # The hits: browsers[1]'s read, and the load of its write request.
        assert cluster.near("a") == {"hit": 2, "route_elsewhere": 0, "stale_version": 1,
                                     "invalidated": 1, "evicted": 1, "not_cached": 0}
    finally:
        cluster.close()


def test_switching_hybrid_off_and_on_logs_nobody_out(store: str, clock: FakeClock) -> None:
    cluster = Instances(store, clock, count=1)
    try:
        browser = Browser()
        browser.send(cluster["a"], "POST", "/cart/apple")
        plain = plain_instance(cluster, "a")
        assert browser.cart(plain) == ["apple"]
        browser.send(plain, "POST", "/cart/pear")
        assert browser.cart(cluster["a"]) == ["apple", "pear"]
    finally:
        cluster.close()


@pytest.mark.parametrize("url", ["memory://", "jwt://"])
def test_near_cache_needs_a_shared_store(url: str) -> None:
    with pytest.raises(ConfigError, match="redis://"):
        SessionConfig(store=url, secret_key=KEY, near_cache=True)


def test_near_cache_settings_from_the_environment() -> None:
    config = SessionConfig.from_env({
        "SESSIONKIT_STORE": "redis://127.0.0.1:1/0", "SESSIONKIT_NEAR_CACHE": "true",
        "SESSIONKIT_NEAR_CACHE_SIZE": "500", "SESSIONKIT_NEAR_CACHE_MAX_AGE": "2m",
    })
    assert (config.near_cache, config.near_cache_size, config.near_cache_seconds) == (
        True, 500, 120.0)
    with pytest.raises(ConfigError, match="near_cache_size"):
        SessionConfig(store="redis://127.0.0.1:1/0", near_cache=True, near_cache_size=0)


def plain_instance(cluster: Instances, name: str) -> ShopClient:
    """A shared-mode instance (no near cache) over the same store."""
    config = SessionConfig(store=cluster.store, secret_key=KEY, instance_id=name,
                           clock=cluster.clock)
    return ShopClient("flask", make_app("flask", config))


__all__ = ["SessionEngine"]
