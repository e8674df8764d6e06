"""Redis failing in the ways that used to reach users wrongly, on real servers (a Cluster with
replicas, a Sentinel group, private redis-servers; never the shared one):

* outage errors that redis-py raises as ``ResponseError`` subclasses (``CLUSTERDOWN``) or as
  cluster exceptions ("slots are not covered") answer 503 with ``Retry-After`` — never a fresh
  session, a 500, or a dropped connection — and the session is intact afterwards;
* error replies that are not about the record (an ACL refusal, ``NOREPLICAS``) are not read as
  "no session" either;
* one deadline bounds a request whatever the socket timeout and the retries;
* every URL form takes redis-py's connection options; a client made by the app works too;
* a Sentinel store's watcher threads end with the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sessionkit import StoreUnavailable
from sessionkit.stores import open_store
from sessionkit.stores.redis import RedisStore
from tests.apps import make
from tests.redis_servers import (
    ClusterNodes,
    RedisProcesses,
    SentinelGroup,
    admin,
    ask,
    spare_ports,
    wait_until,
)
from tests.support import FRAMEWORKS, KEY, ShopClient

RETRY_AFTER = 4


@contextlib.contextmanager
def browser(kind: str, app: Any) -> Iterator[ShopClient]:
    """A browser on ``app``; for FastAPI one event loop for all its requests, as in
    production (the store's async clients belong to a loop)."""
    shop = ShopClient(kind, app)
    if kind == "fastapi":
        with shop._client:
            yield shop
    else:
        yield shop


def session_keys(client: Any) -> list[str]:
    keys = client.keys("sessionkit:*", target_nodes="all") if isinstance(
        client, redis.RedisCluster) else client.keys("sessionkit:*")
    return [k.decode() for k in keys if not k.startswith(b"sessionkit:user:")]


def cluster_client(nodes: ClusterNodes) -> redis.RedisCluster:
    return redis.RedisCluster(host="127.0.0.1", port=nodes.masters()[0], socket_timeout=1)


def unavailable(reply: Any) -> bool:
    """A 503 that tells the browser to come back and sets no cookie."""
    return (reply.status == 503 and reply.header("retry-after") == str(RETRY_AFTER)
            and reply.set_cookies == [])


# --- a Cluster that is down -----------------------------------------------------------------
@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_a_cluster_that_is_down_answers_503_never_a_fresh_session(
    kind: str, replicated_cluster: ClusterNodes, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = replicated_cluster
    app = make(kind, secret_key=KEY, store=nodes.url, retry_after=RETRY_AFTER)
    store = open_store(nodes.url)
    with browser(kind, app) as shop:
        assert shop.call("POST", "/set/cart").status == 200
        probe = cluster_client(nodes)
        [key] = session_keys(probe)
        probe.close()
        owner = nodes.master_of_key(key)
        # Another master hangs and its replica may not take over: the whole cluster goes
        # down, and the session's own (healthy) node answers CLUSTERDOWN at once.
        victim = next(m for m in nodes.masters() if m != owner)
        ask(nodes.replica_of(victim), "CONFIG", "SET", "cluster-replica-no-failover", "yes")
        nodes.processes.pause(victim)
        try:
            wait_until("cluster_state:fail", lambda: nodes.state(owner) == "fail")
            for method, path in [("GET", "/get"), ("POST", "/set/more")]:
                reply = shop.call(method, path)
                assert unavailable(reply), (reply.status, reply.body)
            # log-out-everywhere (the user index) says the store is down, never "0 sessions"
            log_out_everywhere = store.delete_user_sessions if kind == "flask" else (
                lambda user: asyncio.run(store.adelete_user_sessions(user)))
            with pytest.raises(StoreUnavailable):
                log_out_everywhere("ada")
        finally:
            nodes.processes.resume(victim)
            store.close()
        wait_until("cluster_state:ok", lambda: all(nodes.state(p) == "ok" for p in nodes.ports))
        assert shop.call("GET", "/get").json == {"cart": True}  # the same session, intact
    assert "unreadable session record" not in caplog.text


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_a_slot_no_node_serves_answers_503_for_running_and_starting_apps(
    kind: str, replicated_cluster: ClusterNodes
) -> None:
    nodes = replicated_cluster
    url = nodes.url
    running = make(kind, secret_key=KEY, store=url, retry_after=RETRY_AFTER)
    with browser(kind, running) as shop:
        assert shop.call("POST", "/set/cart").status == 200
        cookie = f"session={shop.cookie}"
        probe = cluster_client(nodes)
        [key] = session_keys(probe)
        slot = probe.keyslot(key)
        probe.close()
        owner = nodes.master_of_key(key)
        for port in nodes.ports:  # every node forgets who serves the slot
            ask(port, "CLUSTER", "DELSLOTS", str(slot))
        try:
            wait_until("the slot unserved", lambda: nodes.state(owner) == "fail")
            assert unavailable(shop.call("GET", "/get"))
            # An app starting now cannot even build its slot map ("slots are not covered").
            starting = make(kind, secret_key=KEY, store=url, retry_after=RETRY_AFTER)
            with browser(kind, starting) as newcomer:
                for method, path in [("GET", "/get"), ("POST", "/set/more")]:
                    reply = newcomer.raw(method, path, cookie=cookie)
                    assert unavailable(reply), (reply.status, reply.body)
        finally:
            ask(owner, "CLUSTER", "ADDSLOTS", str(slot))
        wait_until("cluster_state:ok", lambda: all(nodes.state(p) == "ok" for p in nodes.ports))
        assert shop.call("GET", "/get").json == {"cart": True}


# --- error replies that say nothing about the record ------------------------------------------
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[RedisProcesses, int]]:
    processes = RedisProcesses(tmp_path)
    [port] = spare_ports(1)
    try:
        processes.start(port)
        yield processes, port
    finally:
        processes.stop()


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_an_acl_refusal_is_a_503_not_a_fresh_session(
    kind: str, own_redis: tuple[RedisProcesses, int], caplog: pytest.LogCaptureFixture
) -> None:
    _, port = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    with browser(kind, make(kind, secret_key=KEY, store=url, retry_after=RETRY_AFTER)) as shop:
        assert shop.call("POST", "/set/cart").status == 200
        ask(port, "ACL", "SETUSER", "default", "-hgetall")  # an operator's mistake
        reply = shop.call("GET", "/get")
        assert unavailable(reply), (reply.status, reply.body)
        assert "NoPermissionError" in caplog.text  # the log says what Redis refused
        ask(port, "ACL", "SETUSER", "default", "+hgetall")
        assert shop.call("GET", "/get").json == {"cart": True}
    assert "unreadable session record" not in caplog.text


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_writes_refused_for_want_of_replicas_are_503s_and_reads_go_on(
    kind: str, own_redis: tuple[RedisProcesses, int]
) -> None:
    _, port = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    with browser(kind, make(kind, secret_key=KEY, store=url, retry_after=RETRY_AFTER)) as shop:
        assert shop.call("POST", "/set/cart").status == 200
        ask(port, "CONFIG", "SET", "min-replicas-to-write", "1")  # and it has none
        assert unavailable(shop.call("POST", "/set/more"))  # NOREPLICAS
        assert shop.call("GET", "/get").json == {"cart": True}


# --- one deadline per request -------------------------------------------------------------------
@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_a_hung_cluster_master_costs_one_deadline_not_timeouts_times_retries(
    kind: str, replicated_cluster: ClusterNodes
) -> None:
    nodes = replicated_cluster
    # 2 s per socket read, retried by the Cluster client: 7 to 10 s and more without a
    # deadline. With deadline=1 the request is answered within about a second.
    url = nodes.url + "?deadline=1&socket_timeout=2"
    with browser(kind, make(kind, secret_key=KEY, store=url, retry_after=RETRY_AFTER)) as shop:
        assert shop.call("POST", "/set/cart").status == 200
        probe = cluster_client(nodes)
        [key] = session_keys(probe)
        probe.close()
        owner = nodes.master_of_key(key)
        ask(nodes.replica_of(owner), "CONFIG", "SET", "cluster-replica-no-failover", "yes")
        nodes.processes.pause(owner)
        try:
            started = time.monotonic()
            reply = shop.call("GET", "/get")
            waited = time.monotonic() - started
        finally:
            nodes.processes.resume(owner)
        assert unavailable(reply), (reply.status, reply.body)
        assert waited < 2.5, f"answered after {waited:.1f} s"
        assert shop.call("GET", "/get").json == {"cart": True}


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_a_hung_redis_costs_one_deadline_even_with_a_long_socket_timeout(
    kind: str, own_redis: tuple[RedisProcesses, int]
) -> None:
    processes, port = own_redis
    url = f"redis://127.0.0.1:{port}/0?deadline=1&socket_timeout=10"
    with browser(kind, make(kind, secret_key=KEY, store=url, retry_after=RETRY_AFTER)) as shop:
        assert shop.call("POST", "/set/cart").status == 200
        processes.pause(port)
        try:
            started = time.monotonic()
            reply = shop.call("GET", "/get")
            waited = time.monotonic() - started
        finally:
            processes.resume(port)
        assert unavailable(reply), (reply.status, reply.body)
        assert waited < 2.5, f"answered after {waited:.1f} s"
        assert shop.call("GET", "/get").json == {"cart": True}


# --- options in every URL form; clients made by the application ---------------------------------
def client_names(port: int) -> list[str]:
    listing = str(ask(port, "CLIENT", "LIST"))
    return [part[5:] for line in listing.splitlines() for part in line.split()
            if part.startswith("name=")]


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_cluster_and_sentinel_urls_take_redis_py_connection_options(
    kind: str, replicated_cluster: ClusterNodes, sentinel_group: SentinelGroup
) -> None:
    options = "client_name=shop-{}&health_check_interval=5&socket_keepalive=true&max_connections=50"
    for form, url, port in [
        ("cluster", replicated_cluster.url, None),
        ("sentinel", sentinel_group.url, sentinel_group.master),
    ]:
        name = f"{kind}-{form}"
        app = make(kind, secret_key=KEY, store=f"{url}?{options.format(name)}")
        with browser(kind, app) as shop:
            assert shop.call("POST", "/set/a").status == 200
            assert shop.call("GET", "/get").json == {"a": True}
            ports = replicated_cluster.masters() if port is None else [port]
            assert any(f"shop-{name}" in client_names(p) for p in ports)


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_a_store_over_clients_the_app_made(kind: str, own_redis: tuple[RedisProcesses, int],
                                           ) -> None:
    from sessionkit import SessionEngine

    _, port = own_redis
    sync_client = redis.Redis(port=port, client_name="mine")
    pool = redis.asyncio.ConnectionPool(port=port, client_name="mine-async")
    store = RedisStore.from_client(sync_client, pool, key_prefix="app:")
    engine = SessionEngine(store=store, secret_key=KEY)
    app = make("flask", secret_key=KEY, store=store) if kind == "flask" else make(
        kind, engine=engine)
    with browser(kind, app) as shop:
        assert shop.call("POST", "/set/a").status == 200
        assert shop.call("GET", "/get").json == {"a": True}
        assert ("mine" if kind == "flask" else "mine-async") in client_names(port)
    assert [k.split(":")[0] for k in admin(port).keys("*")] == ["app"]
    store.close()
    assert sync_client.ping()  # the store never closes what it was given
    sync_client.close()


# --- the Sentinel watcher ends with its store ---------------------------------------------
def watcher_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sessionkit-sentinel-")]


def test_closing_a_sentinel_store_stops_its_watchers(sentinel_group: SentinelGroup) -> None:
    from sessionkit.stores.base import Load

    before = watcher_threads()
    store = open_store(sentinel_group.url)
    assert store.execute(Load("k", 0, 10, 10)) is None  # the first use starts them
    assert len(watcher_threads()) == len(before) + 3  # one per Sentinel
    store.close()
    assert watcher_threads() == before

    async def use_then_close() -> None:
        assert await store.aexecute(Load("k", 0, 10, 10)) is None
        assert len(watcher_threads()) == len(before) + 3
        await store.aclose()

    asyncio.run(use_then_close())
    assert watcher_threads() == before
