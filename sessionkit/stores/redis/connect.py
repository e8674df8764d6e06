"""Store URLs to redis-py clients: which options each URL form takes, and the factories that
make a sync client and (per event loop) an async client.

``redis://``, ``rediss://`` and ``unix://`` are one Redis; ``redis+sentinel://`` a master that
Sentinels watch; ``redis+cluster://`` a Cluster. All three take the same redis-py connection
options (``DRIVER_OPTIONS``) plus sessionkit's own (``key_prefix``, ``deadline``) and their
form's own; anything else is a ``ConfigError`` at startup that lists what is valid, never an
error at the first request.

The clients sessionkit makes use the bounded connection classes and retry policy of
``deadline``, and Sentinel master connections check ``ROLE`` as they open (``failover``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.cluster
import redis.connection
import redis.sentinel

from ...errors import ConfigError
from ...redact import redact_url
from .deadline import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    DEFAULT_DEADLINE,
    RETRIES,
    BoundedRetry,
    bounded_class,
)
from .failover import Address, MasterState, follows_switches
from .pool import WaitingConnectionPool

# redis-py's constructors are typed loosely (options arrive as one ``**dict``): called as Any.
_parse_url: Any = redis.connection.parse_url
_Sentinel: Any = redis.sentinel.Sentinel
_AsyncSentinel: Any = redis.asyncio.sentinel.Sentinel
_Cluster: Any = redis.cluster.RedisCluster
_AsyncCluster: Any = redis.asyncio.cluster.RedisCluster
_Node: Any = redis.cluster.ClusterNode
_AsyncNode: Any = redis.asyncio.cluster.ClusterNode

DEFAULT_PREFIX = "sessionkit:"
DEFAULT_TIMEOUT = 2.0  # seconds: a store that does not answer is down, not slow
ASYNC_POOL_SIZE = 100  # connections per event loop (redis.asyncio's default)
POOL_WAIT_SECONDS = 20.0  # the most a command waits for a free pooled connection (async)
CLUSTER_RETRIES = 10  # Cluster tries within the deadline (a failover takes a few)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


#: sessionkit's own options, in every form.
OWN_OPTIONS: dict[str, Callable[[str], Any]] = {
    "key_prefix": str,
    "deadline": _positive,  # seconds for one store operation, all retries included
}
#: redis-py's connection options, in every form (names and meanings are redis-py's).
DRIVER_OPTIONS: dict[str, Callable[[str], Any]] = {
    "socket_timeout": _positive,
    "socket_connect_timeout": _positive,
    "socket_keepalive": _flag,
    "socket_read_size": int,
    "health_check_interval": int,
    "max_connections": int,
    "client_name": str,
    "protocol": int,
    # Credentials may come in the query as well as in the user info, as redis-py allows.
    "username": str,
    "password": str,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_check_hostname": _flag,
    "ssl_ciphers": str,
}
PLAIN_OPTIONS: dict[str, Callable[[str], Any]] = {"db": int}
SENTINEL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl": _flag, "sentinel_username": str, "sentinel_password": str,
}
SECRET_OPTIONS = frozenset({"password", "sentinel_password"})
CLUSTER_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl": _flag, "require_full_coverage": _flag, "reinitialize_steps": int,
    "dynamic_startup_nodes": _flag,
}


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a store's data lives and how to reach it."""

    name: str  # the URL with no credentials
    prefix: str
    deadline: float
    make_sync: Callable[[], Any]
    make_async: Callable[[], Any]
    #: For Sentinel deployments: the Sentinels, the service, options for talking to them,
    #: and the state the failover watcher shares with the master connections.
    sentinels: tuple[Address, ...] = ()
    service: str = ""
    sentinel_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    master_state: MasterState | None = None


def parse(url: str) -> Target:
    """The ``Target`` of a Redis store URL; ``ConfigError`` naming the fix if it is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    name = _name(url)
    extra = {"redis+sentinel": SENTINEL_OPTIONS, "redis+cluster": CLUSTER_OPTIONS}.get(
        scheme, PLAIN_OPTIONS)
    options = _options(parts.query, {**OWN_OPTIONS, **DRIVER_OPTIONS, **extra}, scheme)
    prefix = options.pop("key_prefix", DEFAULT_PREFIX)
    deadline = options.pop("deadline", DEFAULT_DEADLINE)
    options.setdefault("socket_timeout", DEFAULT_TIMEOUT)
    options.setdefault("socket_connect_timeout", DEFAULT_TIMEOUT)
    tls = scheme == "rediss" or options.get("ssl", False)
    needs_tls = sorted(k for k in options if k.startswith("ssl_"))
    if needs_tls and not tls:
        raise ConfigError(
            f"{', '.join(needs_tls)} in {name} set up TLS, which this URL does not use: "
            f"use rediss:// (or ssl=true with redis+sentinel:// and redis+cluster://)")
    try:
        if scheme == "redis+sentinel":
            return _sentinel(name, prefix, deadline, parts, options)
        if scheme == "redis+cluster":
            return _cluster(name, prefix, deadline, parts, options)
        return _plain(name, prefix, deadline, url, options)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {name}: {exc}") from None


def _name(url: str) -> str:
    """The URL for logs and status pages: no password, in the user info or the query."""
    parts = urlsplit(redact_url(url))
    query = [(k, "***" if k in SECRET_OPTIONS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query)).geturl()


def _options(query: str, parsers: Mapping[str, Callable[[str], Any]], scheme: str,
             ) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        parser = parsers.get(key)
        if parser is None:
            raise ConfigError(
                f"unknown option {key!r} in a {scheme}:// store URL; valid options: "
                + ", ".join(sorted(parsers)))
        try:
            options[key] = parser(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"store URL option {key}={raw!r} is invalid: {exc}") from None
    return options


def _credentials(netloc: str) -> dict[str, str]:
    if "@" not in netloc:
        return {}
    user, _, password = netloc.rsplit("@", 1)[0].partition(":")
    found = {}
    if user:
        found["username"] = unquote(user)
    if password:
        found["password"] = unquote(password)
    return found


def _hosts(netloc: str, default_port: int) -> tuple[Address, ...]:
    hosts = []
    for item in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, ""
        if port and not port.isdigit():
            raise ValueError(f"{item.strip()!r} is not host:port")
        hosts.append((host.strip("[]") or "localhost", int(port or default_port)))
    return tuple(hosts)


def _check_connection_options(connection_class: type, options: Mapping[str, Any]) -> None:
    """Make (not connect) one connection, so that an option the connection class does not
    take fails at startup instead of at the first request."""
    connection_options = {k: v for k, v in options.items() if k != "max_connections"}
    try:
        connection_class(**connection_options)
    except TypeError as exc:
        raise ValueError(f"an option does not apply to this kind of connection ({exc})"
                         ) from None


def _sync_retry() -> BoundedRetry:
    return BoundedRetry()


def _async_retry() -> redis.asyncio.retry.Retry:
    """Tries within the deadline; ``asyncio.timeout`` ends them when it passes."""
    return redis.asyncio.retry.Retry(
        redis.backoff.FullJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), RETRIES)


# --- one Redis ----------------------------------------------------------------------------------
def _plain(name: str, prefix: str, deadline: float, url: str, options: dict[str, Any],
           ) -> Target:
    """``redis://[[user]:password@]host:6379/0``, ``rediss://...``, ``unix:///path?db=0``"""
    address: dict[str, Any] = _parse_url(url.split("?", 1)[0])
    if "db" in options:
        address["db"] = options.pop("db")
    sync_class = address.pop("connection_class", redis.connection.Connection)
    async_class = getattr(redis.asyncio.connection, sync_class.__name__)
    pool_size = options.pop("max_connections", None)
    _check_connection_options(sync_class, {**address, **options})

    def make_sync() -> Any:
        pool = redis.ConnectionPool(connection_class=bounded_class(sync_class),
                                    max_connections=pool_size, retry=_sync_retry(),
                                    **address, **options)
        return redis.Redis(connection_pool=pool)

    def make_async() -> Any:
        # redis.asyncio's default pool *refuses* a command beyond 100 connections in use (a
        # 503 for a burst of requests on a healthy Redis); this one waits for a free one.
        pool = WaitingConnectionPool(
            connection_class=async_class, max_connections=pool_size or ASYNC_POOL_SIZE,
            timeout=POOL_WAIT_SECONDS, retry=_async_retry(), **address, **options)
        return redis.asyncio.Redis.from_pool(pool)

    return Target(name, prefix, deadline, make_sync, make_async)


# --- Sentinel -----------------------------------------------------------------------------------
def _sentinel(name: str, prefix: str, deadline: float, parts: Any, options: dict[str, Any],
              ) -> Target:
    """``redis+sentinel://[user:password@]host:26379[,host2:26379]/<service>[/<db>]``"""
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError(
            "redis+sentinel URL needs the master's service name: "
            "redis+sentinel://host:26379/mymaster/0")
    service = path[0]
    if len(path) > 1 and not path[1].isdigit():
        raise ValueError(f"the database after the service name must be a number, not {path[1]!r}")
    db = int(path[1]) if len(path) > 1 else 0
    sentinels = _hosts(parts.netloc, 26379)
    ssl = options.pop("ssl", False)
    watch: dict[str, Any] = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
    }
    if "sentinel_username" in options:
        watch["username"] = options.pop("sentinel_username")
    if "sentinel_password" in options:
        watch["password"] = options.pop("sentinel_password")
    if ssl:
        watch["ssl"] = True
    master = {**options, **_credentials(parts.netloc), "db": db}
    _check_connection_options(
        redis.connection.SSLConnection if ssl else redis.connection.Connection, master)
    state = MasterState()
    sync_class = bounded_class(follows_switches(state, ssl=ssl, asynchronous=False),
                               shared=False)
    async_class = follows_switches(state, ssl=ssl, asynchronous=True)

    def make_sync() -> Any:
        manager = _Sentinel(list(sentinels), sentinel_kwargs=watch)
        return manager.master_for(service, connection_class=sync_class, retry=_sync_retry(),
                                  **master)

    def make_async() -> Any:
        manager = _AsyncSentinel(list(sentinels), sentinel_kwargs=watch)
        return manager.master_for(service, connection_class=async_class,
                                  retry=_async_retry(), **master)

    return Target(name, prefix, deadline, make_sync, make_async, sentinels, service, watch,
                  state)


# --- Cluster ------------------------------------------------------------------------------------
def _cluster(name: str, prefix: str, deadline: float, parts: Any, options: dict[str, Any],
             ) -> Target:
    """``redis+cluster://[user:password@]host:port[,host2:port]``"""
    if parts.path.strip("/"):
        raise ValueError("a Cluster has no databases: remove the path "
                         f"{parts.path!r} (redis+cluster://host:7000,host2:7001)")
    hosts = _hosts(parts.netloc, 6379)
    ssl = options.pop("ssl", False)
    credentials = _credentials(parts.netloc)
    sync_class = bounded_class(redis.connection.SSLConnection if ssl
                               else redis.connection.Connection)
    (first_host, first_port), rest = hosts[0], hosts[1:]
    connection_options = {k: v for k, v in options.items() if k not in CLUSTER_OPTIONS}
    _check_connection_options(
        redis.connection.SSLConnection if ssl else redis.connection.Connection, connection_options)

    def make_sync() -> Any:
        # Given as a URL, redis-py builds each node's pool from these options, so the
        # bounded connection class reaches every node connection.
        return _Cluster(
            url=f"redis://{_netloc(first_host, first_port)}",
            startup_nodes=[_Node(h, p) for h, p in rest],
            connection_class=sync_class, retry=_cluster_retry(), **credentials, **options)

    def make_async() -> Any:
        return _AsyncCluster(
            startup_nodes=[_AsyncNode(h, p) for h, p in hosts],
            ssl=ssl, retry=_async_cluster_retry(), **credentials, **options)

    return Target(name, prefix, deadline, make_sync, make_async)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _cluster_retry() -> BoundedRetry:
    """Cluster clients only read the number of tries from it; the deadline ends them."""
    return BoundedRetry(CLUSTER_RETRIES)


def _async_cluster_retry() -> redis.asyncio.retry.Retry:
    return redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), CLUSTER_RETRIES)


# --- clients made by the application ------------------------------------------------------------
def from_clients(client: Any, async_client: Any, *, name: str | None, prefix: str,
                 deadline: float) -> Target:
    """A ``Target`` over clients (or connection pools) the application made itself."""
    sync = _client_of(client, redis.ConnectionPool, redis.Redis)
    asynchronous = _client_of(async_client, redis.asyncio.ConnectionPool, redis.asyncio.Redis)
    if sync is None and asynchronous is None:
        raise ConfigError("RedisStore.from_client needs a client or connection pool: "
                          "client=redis.Redis(...) and/or async_client=redis.asyncio.Redis(...)")
    if name is None:
        name = _describe(sync if sync is not None else asynchronous)

    def make_sync() -> Any:
        if sync is None:
            raise ConfigError(f"{name} was given no sync client: pass client=redis.Redis(...)")
        return sync

    def make_async() -> Any:
        if asynchronous is None:
            raise ConfigError(f"{name} was given no async client: "
                              f"pass async_client=redis.asyncio.Redis(...)")
        return asynchronous

    return Target(name, prefix, deadline, make_sync, make_async)


def _describe(client: Any) -> str:
    """A URL-like name for a client (no credentials): ``redis://host:port/db``."""
    if hasattr(client, "get_default_node"):  # a Cluster client
        node = client.get_default_node()
        return f"redis+cluster://{_netloc(node.host, node.port)}" if node else "redis+cluster://"
    options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "path" in options:
        return f"unix://{options['path']}?db={options.get('db', 0)}"
    host, port = options.get("host", "localhost"), options.get("port", 6379)
    return f"redis://{_netloc(host, port)}/{options.get('db', 0)}"


def _client_of(given: Any, pool_type: type, client_type: Callable[..., Any]) -> Any:
    if isinstance(given, pool_type):
        return client_type(connection_pool=given)
    return given
