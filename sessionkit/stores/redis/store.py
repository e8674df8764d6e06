"""Redis store: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``.

A session is one hash at ``<prefix><store key>``: each session key in a field ``d:<key>``
holding its JSON text, plus ``c`` (created), ``e`` (expires), ``a`` (accessed), ``u`` (user)
and ``f`` (record format). The hash layout is what makes writes deltas: ``HSET`` of the changed
fields merges atomically with what other requests wrote, so no update is lost.

I/O per request: a read is one ``HGETALL``; a write adds one ``HSET`` (plus ``HDEL`` when keys
were removed). The expiry lives in ``e`` (checked against the engine's clock) and in the key's
TTL (the cleanup); reads and writes slide both only once a tenth of the idle timeout has
passed (one ``PEXPIRE`` more, in the same pipeline), so a read is one command and a write
two. A write to a session destroyed meanwhile would re-create a partial hash: ``HSET`` always
sets ``f``, so its reply says whether the hash existed, and the partial hash is deleted at once.

Users: ``<prefix>user:<user id>`` is a set of store keys, expiring after the absolute timeout
(no session outlives it). Deleting a user's sessions checks each member's ``u`` first, so a
stale member never costs another user a session.

The same operation code runs sync (redis-py) and async (``redis.asyncio``): each operation is
a generator that yields batches of commands and receives their replies (``sessionkit.sansio``);
only ``_send`` and ``_asend`` touch a client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.exceptions
import redis.sentinel

from ..config import redact_url
from ..errors import ConfigError, StoreUnavailable
from ..sansio import run_async, run_sync
from .base import Create, Delete, DeleteUser, Load, Op, Record, Store, Touch, Update

logger = logging.getLogger("sessionkit")

FORMAT = b"1"
_CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
DEFAULT_PREFIX = "sessionkit:"
DEFAULT_TIMEOUT = 2.0  # seconds: a store that does not answer is down, not slow
ASYNC_POOL_SIZE = 100  # connections per event loop (redis.asyncio's default)
POOL_WAIT_SECONDS = 20.0  # the most a command waits for a free pooled connection
Command: TypeAlias = tuple[str, tuple[Any, ...]]
Steps: TypeAlias = Generator[list[Command], list[Any], Any]

#: Errors that mean "Redis is not reachable right now" (failover, restart, network), or
#: refuses writes (full under ``maxmemory-policy noeviction``: 503, not a crash).
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,  # full under maxmemory-policy noeviction: writes refused
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    OSError,
    asyncio.TimeoutError,
)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisStore(Store):
    shared = True
    slides_on_load = False

    def __init__(
        self,
        sync_factory: Callable[[], Any],
        async_factory: Callable[[], Any],
        *,
        name: str,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self._sync_factory = sync_factory
        self._async_factory = async_factory
        self._sync_client: Any = None
        self._policy_checked = False
        # redis.asyncio clients belong to the event loop that made them.
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        prefix = query.pop("key_prefix", DEFAULT_PREFIX)
        query.setdefault("socket_timeout", str(DEFAULT_TIMEOUT))
        query.setdefault("socket_connect_timeout", str(DEFAULT_TIMEOUT))
        scheme = parts.scheme.lower()
        name = redact_url(url)
        if scheme == "redis+sentinel":
            sync_factory, async_factory = _sentinel_factories(parts, query)
        elif scheme == "redis+cluster":
            sync_factory, async_factory = _cluster_factories(parts, query)
        else:
            plain = url.split("?", 1)[0] + "?" + urlencode(query)
            try:
                parse_url: Any = redis.connection.parse_url
                parse_url(plain)  # fail at startup, not at the first request
            except ValueError as exc:
                raise ConfigError(f"invalid Redis URL {name}: {exc}") from None

            def sync_factory() -> Any:
                return redis.Redis.from_url(plain)

            def async_factory() -> Any:
                # redis.asyncio's default pool *refuses* a command beyond 100 connections in
                # use (a 503 for a burst of requests on a healthy Redis); this one waits for a
                # free connection instead. ``max_connections`` in the URL still applies.
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    plain, max_connections=ASYNC_POOL_SIZE, timeout=POOL_WAIT_SECONDS)
                return redis.asyncio.Redis.from_pool(pool)

        return cls(sync_factory, async_factory, name=name, prefix=prefix)

    def _sync(self) -> Any:
        if self._sync_client is None:
            self._sync_client = self._sync_factory()
        return self._sync_client

    def _async(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = self._async_factory()
        return client

    # --- I/O: the only code that touches a client --------------------------------------------
    def execute(self, op: Op) -> Any:
        try:
            if not self._policy_checked:
                run_sync(self._check_policy(), self._send)
            return run_sync(getattr(self, op.method)(op), self._send)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(self.name, exc) from exc

    async def aexecute(self, op: Op) -> Any:
        try:
            if not self._policy_checked:
                await run_async(self._check_policy(), self._asend)
            return await run_async(getattr(self, op.method)(op), self._asend)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(self.name, exc) from exc

    def _send(self, batch: list[Command]) -> list[Any]:
        """One round trip: a lone command directly, several in one pipeline."""
        client = self._sync()
        if len(batch) == 1:
            name, args = batch[0]
            return [getattr(client, name)(*args)]
        pipe = client.pipeline(transaction=False)
        for name, args in batch:
            getattr(pipe, name)(*args)
        replies: list[Any] = pipe.execute()
        return replies

    async def _asend(self, batch: list[Command]) -> list[Any]:
        client = self._async()
        if len(batch) == 1:
            name, args = batch[0]
            return [await getattr(client, name)(*args)]
        pipe = client.pipeline(transaction=False)
        for name, args in batch:
            getattr(pipe, name)(*args)
        replies: list[Any] = await pipe.execute()
        return replies

    def close(self) -> None:
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await _close_async(client)

    # --- operations (no I/O: they yield commands) -----------------------------------------
    def _check_policy(self) -> Steps:
        """Warn once if Redis may evict sessions to free memory: every session has a TTL, so
        ``volatile-*`` policies evict them as surely as ``allkeys-*``; only ``noeviction``
        keeps them (writes then fail with an error instead of logging people out). A server
        that refuses ``CONFIG`` (managed Redis) is not checked."""
        self._policy_checked = True
        try:
            [reply] = yield [("config_get", ("maxmemory-policy",))]
        except redis.exceptions.ResponseError:
            logger.debug("sessionkit: %s refuses CONFIG GET; eviction policy not checked",
                         self.name)
            return None
        except BaseException:
            self._policy_checked = False  # not reachable yet: check on the next operation
            raise
        policy = _eviction_policy(reply)
        if policy is not None and policy != "noeviction":
            logger.warning(
                "sessionkit: %s has maxmemory-policy %s: when it reaches maxmemory it evicts "
                "sessions (everyone evicted is logged out, their carts lost). Set "
                "maxmemory-policy noeviction for the sessions' Redis",
                self.name, policy,
            )
        return None

    def _key(self, store_key: str) -> str:
        return self.prefix + store_key

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def load(self, op: Load) -> Steps:
        try:
            [raw] = yield [("hgetall", (self._key(op.key),))]
        except redis.exceptions.ResponseError:  # not a hash: not ours, never trusted
            raw = {b"?": b"?"}
        if not raw:
            return None
        record = _parse(raw)
        if record is None:
            logger.error("sessionkit: unreadable session record in %s; ignoring it", self.name)
        return record

    def create(self, op: Create) -> Steps:
        record, key = op.record, self._key(op.key)
        mapping: dict[str, Any] = {"d:" + k: v for k, v in record.fields.items()}
        mapping.update(c=repr(record.created_at), e=repr(record.expires_at),
                       a=repr(record.accessed_at), f=FORMAT)
        if record.user_id is not None:
            mapping["u"] = record.user_id
        if record.instance is not None:
            mapping["i"] = record.instance
        ttl = _ms(record.expires_at - record.accessed_at)
        if op.if_absent:  # atomically: only one of two concurrent movers may write
            flat = [item for pair in mapping.items() for item in pair]
            [created] = yield [("eval", (_CREATE_IF_ABSENT, 1, key, ttl, *flat))]
            if not created:
                return False
            batch: list[Command] = []
        else:  # store keys are HMACs of 256 random bits: a new one never exists already
            batch = [("hset", (key, None, None, mapping)), ("pexpire", (key, ttl))]
        if record.user_id is not None:
            batch += self._bind(record.user_id, op.key, op.absolute)
        if batch:
            yield batch
        return True

    def update(self, op: Update) -> Steps:
        key = self._key(op.key)
        mapping: dict[str, Any] = {"d:" + k: v for k, v in op.changes.items()}
        mapping.update(e=repr(op.expires_at), a=repr(op.now))
        mapping["f"] = FORMAT  # always set: the reply then says whether the hash existed
        removed = ["d:" + k for k in op.removed]
        if op.set_user:
            if op.user_id is None:
                removed.append("u")
            else:
                mapping["u"] = op.user_id
        batch: list[Command] = [("hset", (key, None, None, mapping))]
        if removed:
            batch.append(("hdel", (key, *removed)))
        if op.slide:
            batch.append(("pexpire", (key, _ms(op.expires_at - op.now))))
        if op.set_user and op.user_id is not None:
            batch += self._bind(op.user_id, op.key, op.absolute)
        replies = yield batch
        if replies[0] == len(mapping):  # every field was new: the session had been destroyed
            yield [("delete", (key,))]
            return False
        return True

    def touch(self, op: Touch) -> Steps:
        key = self._key(op.key)
        mapping = {"e": repr(op.expires_at), "a": repr(op.now), "f": FORMAT}
        replies = yield [
            ("hset", (key, None, None, mapping)),
            ("pexpire", (key, _ms(op.expires_at - op.now))),
        ]
        if replies[0] == len(mapping):
            yield [("delete", (key,))]
            return False
        return True

    def delete(self, op: Delete) -> Steps:
        yield [("delete", (self._key(op.key),))]
        return None

    def delete_user(self, op: DeleteUser) -> Steps:
        user_key = self._user_key(op.key)
        [members] = yield [("smembers", (user_key,))]
        if not members:
            return 0
        store_keys = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        owners = yield [("hget", (self._key(k), "u")) for k in store_keys]
        user = op.key.encode()
        doomed = [k for k, owner in zip(store_keys, owners, strict=True) if owner == user]
        replies = yield [("srem", (user_key, *store_keys))] + [
            ("delete", (self._key(k),)) for k in doomed
        ]
        return sum(int(n) for n in replies[1:])

    # --- whole-store tools --------------------------------------------------------------------
    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        """``SCAN`` the prefix (every node of a cluster), then one pipeline of ``HGETALL``s
        per batch."""
        client = self._sync()
        users = (self.prefix + "user:").encode()
        keys: list[bytes] = []
        try:
            for key in client.scan_iter(match=self.prefix + "*", count=batch, _type="hash"):
                if not key.startswith(users):
                    keys.append(key)
                if len(keys) >= batch:
                    yield self._fetch(client, keys)
                    keys = []
            if keys:
                yield self._fetch(client, keys)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(self.name, exc) from exc

    def _fetch(self, client: Any, keys: list[bytes]) -> list[tuple[str, Record]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        found = []
        skip = len(self.prefix)
        for key, raw in zip(keys, pipe.execute(), strict=True):
            record = _parse(raw) if raw else None
            if record is not None:
                found.append((key.decode()[skip:], record))
        return found

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> int:
        """A batch in one pipeline of create-if-absent scripts, then one of user bindings."""
        client = self._sync()
        creates, binds = client.pipeline(transaction=False), client.pipeline(transaction=False)
        for key, record in items:
            [(name, args)] = next(self.create(Create(key, record, absolute, if_absent=True)))
            getattr(creates, name)(*args)
        try:
            replies = creates.execute()
            created = 0
            for (key, record), reply in zip(items, replies, strict=True):
                if reply == 1:
                    created += 1
                    for name, args in self._bind(record.user_id, key, absolute) if (
                            record.user_id is not None) else ():
                        getattr(binds, name)(*args)
            binds.execute()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(self.name, exc) from exc
        return created

    def _bind(self, user_id: str, store_key: str, absolute: float) -> list[Command]:
        user_key = self._user_key(user_id)
        return [("sadd", (user_key, store_key)), ("pexpire", (user_key, _ms(absolute)))]


def _eviction_policy(reply: Any) -> str | None:
    """The ``maxmemory-policy`` in a ``CONFIG GET`` reply (a cluster answers per node)."""
    if not isinstance(reply, dict):
        return None
    for name, value in reply.items():
        if isinstance(value, dict):
            found = _eviction_policy(value)
            if found is not None:
                return found
        elif name in ("maxmemory-policy", b"maxmemory-policy"):
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _parse(raw: dict[bytes, bytes]) -> Record | None:
    """A record from ``HGETALL``, or None if it is partial, of another format or garbled."""
    try:
        if raw.get(b"f") != FORMAT or b"c" not in raw:
            return None
        user, instance = raw.get(b"u"), raw.get(b"i")
        fields = {
            name[2:].decode(): value.decode() for name, value in raw.items() if name[:2] == b"d:"
        }
        return Record(
            fields,
            float(raw[b"c"]),
            float(raw[b"e"]),
            float(raw.get(b"a", raw[b"c"])),
            user.decode() if user is not None else None,
            0,
            instance.decode() if instance is not None else None,
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


# --- connection factories ------------------------------------------------------------------
def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for item in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, ""
        hosts.append((host.strip("[]") or "localhost", int(port or default_port)))
    return hosts


def _credentials(netloc: str) -> dict[str, str]:
    if "@" not in netloc:
        return {}
    userinfo = netloc.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    found = {}
    if user:
        found["username"] = unquote(user)
    if password:
        found["password"] = unquote(password)
    return found


def _client_options(query: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in query.items():
        if name in ("socket_timeout", "socket_connect_timeout"):
            options[name] = float(value)
        elif name in ("ssl",):
            options[name] = value.lower() in ("1", "true", "yes")
        elif name == "sentinel_password":
            continue
        else:
            raise ConfigError(
                f"unknown option {name!r} in a redis+sentinel/redis+cluster URL; valid: "
                f"key_prefix, socket_timeout, socket_connect_timeout, ssl, sentinel_password"
            )
    return options


def _sentinel_factories(
    parts: Any, query: dict[str, str]
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``redis+sentinel://[user:password@]host:26379[,host2:26379]/<service>[/<db>]``"""
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError(
            "redis+sentinel URL needs the master's service name: "
            "redis+sentinel://host:26379/mymaster/0"
        )
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    hosts = _hosts(parts.netloc, 26379)
    options = {**_client_options(query), **_credentials(parts.netloc), "db": db}
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket")}
    if "sentinel_password" in query:
        sentinel_options["password"] = query["sentinel_password"]

    def factory(sentinel_class: Any) -> Callable[[], Any]:
        def make() -> Any:
            sentinel = sentinel_class(hosts, sentinel_kwargs=sentinel_options, **options)
            return sentinel.master_for(service)

        return make

    return factory(redis.sentinel.Sentinel), factory(redis.asyncio.sentinel.Sentinel)


def _cluster_factories(
    parts: Any, query: dict[str, str]
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``redis+cluster://[user:password@]host:port[,host2:port]``"""
    hosts = _hosts(parts.netloc, 6379)
    options = {**_client_options(query), **_credentials(parts.netloc)}

    def factory(module: Any) -> Callable[[], Any]:
        def make() -> Any:
            nodes = [module.ClusterNode(h, p) for h, p in hosts]
            return module.RedisCluster(startup_nodes=nodes, **options)

        return make

    return factory(redis.cluster), factory(redis.asyncio.cluster)


async def _close_async(client: Any) -> None:
    close: Callable[[], Awaitable[None]] | None = getattr(client, "aclose", None)
    if close is not None:
        await close()


__all__: Sequence[str] = ["RedisStore"]
