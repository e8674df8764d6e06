"""``RedisStore``: the operations (no I/O: they yield commands) and the only code that sends
them (``_send`` and ``_asend``).

Every error from redis-py passes through one rule (``errors``) on its way back into an
operation: an outage or a refusal becomes ``StoreUnavailable`` (503 with ``Retry-After``), a
key that is not a hash becomes the reply ``NOT_OURS``, and nothing else is ever read as "no
session". Each operation runs under one deadline (``deadline``), and on Sentinel deployments
a watcher moves the connections off a master as soon as the Sentinels start replacing it
(``failover``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, Self, TypeAlias

import redis.cluster

from ...errors import StoreUnavailable
from ...meta import decode as decode_meta
from ...meta import encode as encode_meta
from ...sansio import run_async, run_sync
from ..base import (
    Capabilities,
    CommandStore,
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    R,
    Record,
    Touch,
    Update,
)
from . import connect
from .deadline import DEFAULT_DEADLINE, bounded
from .errors import NO_SCRIPT, NOT_OURS, Kind, Refused, classify, reply, unavailable
from .failover import SwitchWatcher

logger = logging.getLogger("sessionkit")

FORMAT = b"1"
_CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
#: ``Update`` and ``Touch`` in one atomic step: change a live hash only (0 when it is gone: a
#: write never resurrects a session; -1 when the key is not a hash), slide its expiry, and
#: for an update bump its version ``v`` with the change, returning the new one (a touch
#: returns 1). Fields are set one call each (no ``unpack``: Lua's stack would cap how many
#: keys one write may change). One script for both, so a server learns it once.
#: KEYS[1] the record; ARGV: milliseconds to live (0: keep), 1 to bump the version (else 0),
#: how many names to delete, those names, then name/value pairs to set.
WRITE_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return 0 end
if kind ~= 'hash' then return -1 end
local deleted = tonumber(ARGV[3])
for i = 4 + deleted, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 4, 3 + deleted do redis.call('HDEL', KEYS[1], ARGV[i]) end
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
if ARGV[2] == '1' then return redis.call('HINCRBY', KEYS[1], 'v', 1) end
return 1
"""
#: The script's name for ``EVALSHA`` (Redis names scripts by SHA-1; no security role here).
WRITE_SCRIPT_SHA = hashlib.sha1(WRITE_SCRIPT.encode(), usedforsecurity=False).hexdigest()
Command: TypeAlias = tuple[str, tuple[Any, ...]]
Steps: TypeAlias = Generator[list[Command], list[Any], R]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisStore(CommandStore[list[Command]]):
    capabilities = Capabilities(shared=True, lists_records=True)
    #: The Redis type of a session's key, for ``iter_records`` (``SCAN ... TYPE``).
    record_type = "hash"

    def __init__(self, target: connect.Target, *, owns_clients: bool = True,
                 watch_url: str | None = None) -> None:
        #: A plain Redis URL to watch for invalidations (hybrid mode), when one can be.
        self._watch_url = watch_url
        self.name = target.name
        self.prefix = target.prefix
        #: Seconds one operation may take, every retry included.
        self.deadline = target.deadline
        self._target = target
        self._owns_clients = owns_clients
        self._sync_client: Any = None
        self._sync_lock = threading.Lock()
        self._policy_checked = False
        # redis.asyncio clients belong to the event loop that made them.
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._watcher: SwitchWatcher | None = None
        if target.master_state is not None:
            self._watcher = SwitchWatcher(target.sentinels, target.service,
                                          dict(target.sentinel_options), target.master_state)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **extra: Any) -> Self:
        """The store at ``url``; ``extra`` goes to the constructor of a subclass."""
        plain = url.split("://", 1)[0].lower() in ("redis", "rediss", "unix")
        return cls(connect.parse(url), watch_url=url if plain else None, **extra)

    @classmethod
    def from_client(
        cls, client: Any = None, async_client: Any = None, *,
        key_prefix: str = connect.DEFAULT_PREFIX, deadline: float = DEFAULT_DEADLINE,
        name: str | None = None,
    ) -> RedisStore:
        """A store over a client or connection pool the application made: ``client`` a
        ``redis.Redis`` / ``RedisCluster`` / ``Sentinel.master_for()`` client or a
        ``redis.ConnectionPool`` (used by WSGI apps), ``async_client`` their ``redis.asyncio``
        counterparts (used by ASGI apps, on the event loop they belong to). They keep their
        own timeouts and retries; ``deadline`` bounds async operations; sync ones are bounded
        by the client's own ``socket_timeout`` and retry policy. The store never closes them,
        and does not watch Sentinels for them (a ``redis+sentinel://`` URL does)."""
        target = connect.from_clients(client, async_client, name=name, prefix=key_prefix,
                                      deadline=deadline)
        return cls(target, owns_clients=False)

    def _sync(self) -> Any:
        client = self._sync_client
        if client is None:
            with self._sync_lock:
                if self._sync_client is None:
                    self._start_watcher()
                    self._sync_client = self._target.make_sync()
                client = self._sync_client
        return client

    def _async(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            self._start_watcher()
            client = self._async_clients[loop] = self._target.make_async()
        return client

    # --- Sentinel failovers ------------------------------------------------------------------
    def _start_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.start()

    # --- I/O: the only code that touches a client --------------------------------------------
    def run(self, steps: Steps[R]) -> R:
        with bounded(self.deadline):
            if not self._policy_checked:
                run_sync(self._check_policy(), self._send)
            return run_sync(steps, self._send)

    async def arun(self, steps: Steps[R]) -> R:
        try:
            async with asyncio.timeout(self.deadline):
                if not self._policy_checked:
                    await run_async(self._check_policy(), self._asend)
                return await run_async(steps, self._asend)
        except TimeoutError as exc:  # the deadline passed while a command was awaited
            raise StoreUnavailable(self.name, TimeoutError(
                f"no answer within the {self.deadline:g} s deadline")) from exc

    def invalidation_watcher(self, cache: Any, clock: Callable[[], float], idle: float,
                             absolute: float) -> Any:
        """Plain Redis pushes changes (``CLIENT TRACKING``, ``sessionkit.invalidations``);
        Sentinel and Cluster stores are not watched (copies live ``near_cache_max_age``)."""
        if self._watch_url is None:
            return None
        from ...invalidations import RedisInvalidations

        return RedisInvalidations(self._watch_url, self.prefix, cache, clock)

    def _send(self, batch: list[Command]) -> list[Any]:
        """One round trip: a lone command directly, several in one pipeline."""
        try:
            client = self._sync()
            if len(batch) == 1:
                name, args = batch[0]
                try:
                    return [getattr(client, name)(*args)]
                except Exception as exc:  # a WRONGTYPE reply is an answer, not a failure
                    return [reply(exc)]
            pipe = client.pipeline(transaction=False)
            for name, args in batch:
                getattr(pipe, name)(*args)
            return [reply(r) for r in pipe.execute(raise_on_error=False)]
        except Exception as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def _asend(self, batch: list[Command]) -> list[Any]:
        try:
            client = self._async()
            if len(batch) == 1:
                name, args = batch[0]
                try:
                    return [await getattr(client, name)(*args)]
                except Exception as exc:
                    return [reply(exc)]
            pipe = client.pipeline(transaction=False)
            for name, args in batch:
                getattr(pipe, name)(*args)
            return [reply(r) for r in await pipe.execute(raise_on_error=False)]
        except Exception as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translated(self, error: Exception) -> Exception:
        """What an operation sees of a failed round trip: ``StoreUnavailable``, except for
        calls redis-py itself refused (``Kind.BUG``: a programming error, left as it is). An
        exception redis-py did not mean to raise (an internal race while a node fails, seen
        as an ``AttributeError`` in redis.asyncio's Cluster client) is an outage too, logged
        with its traceback."""
        if isinstance(error, StoreUnavailable):
            return error
        kind = classify(error)
        if kind is Kind.BUG:
            return error
        if kind is None:
            logger.error("sessionkit: redis-py failed with an unexpected %s talking to %s; "
                         "answered as an outage", type(error).__name__, self.name,
                         exc_info=error)
        return unavailable(self.name, error)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        with self._sync_lock:
            client, self._sync_client = self._sync_client, None
        if client is not None and self._owns_clients:
            client.close()

    async def aclose(self) -> None:
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None and self._owns_clients:
            await _close_async(client)

    # --- operations (no I/O: they yield commands) -----------------------------------------
    def _check_policy(self) -> Steps[None]:
        """Warn once if Redis may evict sessions to free memory: every session has a TTL, so
        ``volatile-*`` policies evict them as surely as ``allkeys-*``; only ``noeviction``
        keeps them (writes then fail with an error instead of logging people out). A server
        that refuses ``CONFIG`` (managed Redis) is not checked."""
        self._policy_checked = True
        try:
            [answer] = yield [("config_get", ("maxmemory-policy",))]
        except Refused:
            logger.debug("sessionkit: %s refuses CONFIG GET; eviction policy not checked",
                         self.name)
            return None
        except BaseException:
            self._policy_checked = False  # not reachable yet: check on the next operation
            raise
        policy = _eviction_policy(answer)
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

    def load(self, op: Load) -> Steps[Record | None]:
        [raw] = yield [("hgetall", (self._key(op.key),))]
        if not raw:
            return None
        record = None if raw is NOT_OURS else _parse(raw)
        if record is None:  # not a hash, or not one of ours: never trusted
            logger.error("sessionkit: unreadable session record in %s; ignoring it", self.name)
        return record

    def create(self, op: Create) -> Steps[bool]:
        record, key = op.record, self._key(op.key)
        mapping: dict[str, Any] = {"d:" + k: v for k, v in record.fields.items()}
        mapping.update(c=repr(record.created_at), e=repr(record.expires_at),
                       a=repr(record.accessed_at), v=record.version, f=FORMAT)
        if record.user_id is not None:
            mapping["u"] = record.user_id
        if record.instance is not None:
            mapping["i"] = record.instance
        if record.meta:
            mapping["m"] = encode_meta(record.meta)
        ttl = _ms(record.expires_at - record.accessed_at)
        if op.if_absent:  # atomically: only one of two concurrent movers may write
            flat = [item for pair in mapping.items() for item in pair]
            [created] = yield [("eval", (_CREATE_IF_ABSENT, 1, key, ttl, *flat))]
            if created != 1:
                return False
            batch: list[Command] = []
        else:  # store keys are HMACs of 256 random bits: a new one never exists already
            batch = [("hset", (key, None, None, mapping)), ("pexpire", (key, ttl))]
        if record.user_id is not None:
            batch += self._bind(record.user_id, op.key, op.absolute)
        if batch:
            yield batch
        return True

    def update(self, op: Update) -> Steps[int]:
        """One script (``WRITE_SCRIPT``), then the user's index when the session was bound to
        one (a separate round trip: a Cluster keeps that index on another node)."""
        removed = ["d:" + k for k in op.removed]
        pairs: list[Any] = []
        for name, value in op.changes.items():
            pairs += ("d:" + name, value)
        pairs += ("e", repr(op.expires_at), "a", repr(op.now))
        if op.set_user:
            if op.user_id is None:
                removed.append("u")
            else:
                pairs += ("u", op.user_id)
        if op.meta is not None:
            if op.meta:
                pairs += ("m", encode_meta(op.meta))
            else:
                removed.append("m")
        version = yield from self._write(
            op.key, _ms(op.expires_at - op.now) if op.slide else 0, 1, removed, pairs)
        if not version:
            return False  # gone (or never a session of ours): a delta never resurrects it
        if op.set_user and op.user_id is not None:
            yield self._bind(op.user_id, op.key, op.absolute)
        return version

    def touch(self, op: Touch) -> Steps[bool]:
        answer = yield from self._write(op.key, _ms(op.expires_at - op.now), 0, [],
                                        ["e", repr(op.expires_at), "a", repr(op.now)])
        return bool(answer)

    def _write(self, store_key: str, ttl: int, bump: int, removed: list[str],
               pairs: list[Any]) -> Steps[int]:
        """Run ``WRITE_SCRIPT``: what it returned if positive (the new version, or 1), else 0."""
        args = (1, self._key(store_key), ttl, bump, len(removed), *removed, *pairs)
        [answer] = yield [("evalsha", (WRITE_SCRIPT_SHA, *args))]
        if answer is NO_SCRIPT:  # a restarted or failed-over server: send the script itself
            [answer] = yield [("eval", (WRITE_SCRIPT, *args))]
        return answer if isinstance(answer, int) and answer > 0 else 0

    def delete(self, op: Delete) -> Steps[None]:
        yield [("delete", (self._key(op.key),))]
        return None

    def delete_user(self, op: DeleteUser) -> Steps[int]:
        user_key = self._user_key(op.key)
        [members] = yield [("smembers", (user_key,))]
        if not members or members is NOT_OURS:
            return 0
        store_keys = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        owners = yield [("hget", (self._key(k), "u")) for k in store_keys]
        user = op.key.encode()
        doomed = [k for k, owner in zip(store_keys, owners, strict=True) if owner == user]
        replies = yield [("srem", (user_key, *store_keys))] + [
            ("delete", (self._key(k),)) for k in doomed
        ]
        return sum(int(n) for n in replies[1:])

    def list_user(self, op: ListUser) -> Steps[list[tuple[str, Record]]]:
        """The user's index set, then one pipeline of ``HGETALL``s; members that are gone,
        expired or bound to someone else since are left out (``delete_user`` prunes them)."""
        [members] = yield [("smembers", (self._user_key(op.key),))]
        if not members or members is NOT_OURS:
            return []
        store_keys = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        raws = yield [("hgetall", (self._key(k),)) for k in store_keys]
        found = []
        for key, raw in zip(store_keys, raws, strict=True):
            record = _parse(raw) if raw and raw is not NOT_OURS else None
            if record is not None and record.user_id == op.key and record.expires_at > op.now:
                found.append((key, record))
        return found

    # --- whole-store tools --------------------------------------------------------------------
    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        """``SCAN`` the prefix (every node of a cluster), then one pipeline of ``HGETALL``s
        per batch."""
        try:
            client = self._sync()
            users = (self.prefix + "user:").encode()
            keys: list[bytes] = []
            for key in client.scan_iter(match=self.prefix + "*", count=batch,
                                        _type=self.record_type):
                if not key.startswith(users):
                    keys.append(key)
                if len(keys) >= batch:
                    yield self._fetch(client, keys)
                    keys = []
            if keys:
                yield self._fetch(client, keys)
        except Exception as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _fetch(self, client: Any, keys: list[bytes]) -> list[tuple[str, Record]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        found = []
        skip = len(self.prefix)
        for key, raw in zip(keys, pipe.execute(raise_on_error=False), strict=True):
            value: Any = reply(raw)
            record = _parse(value) if value and value is not NOT_OURS else None
            if record is not None:
                found.append((key.decode()[skip:], record))
        return found

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> int:
        """A batch in one pipeline of create-if-absent scripts, then one of user bindings
        (a Cluster's pipelines run no scripts: there, one operation per record)."""
        try:
            client = self._sync()
            if isinstance(client, redis.cluster.RedisCluster):
                return super().put_records(items, absolute)
            creates = client.pipeline(transaction=False)
            binds = client.pipeline(transaction=False)
            for key, record in items:
                [(name, args)] = next(self.create(Create(key, record, absolute, if_absent=True)))
                getattr(creates, name)(*args)
            created = 0
            for (key, record), answer in zip(items, creates.execute(), strict=True):
                if answer == 1:
                    created += 1
                    for name, args in self._bind(record.user_id, key, absolute) if (
                            record.user_id is not None) else ():
                        getattr(binds, name)(*args)
            binds.execute()
        except Exception as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc
        return created

    def _bind(self, user_id: str, store_key: str, absolute: float) -> list[Command]:
        user_key = self._user_key(user_id)
        return [("sadd", (user_key, store_key)), ("pexpire", (user_key, _ms(absolute)))]


def _eviction_policy(answer: Any) -> str | None:
    """The ``maxmemory-policy`` in a ``CONFIG GET`` reply (a cluster answers per node)."""
    if not isinstance(answer, dict):
        return None
    for name, value in answer.items():
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
        user, instance, stored_meta = raw.get(b"u"), raw.get(b"i"), raw.get(b"m")
        meta = {} if stored_meta is None else decode_meta(stored_meta)
        if meta is None:
            return None
        fields = {
            name[2:].decode(): value.decode() for name, value in raw.items() if name[:2] == b"d:"
        }
        return Record(
            fields,
            float(raw[b"c"]),
            float(raw[b"e"]),
            float(raw.get(b"a", raw[b"c"])),
            user.decode() if user is not None else None,
            int(raw.get(b"v", 0)),
            instance.decode() if instance is not None else None,
            meta,
        )
    except (KeyError, ValueError, UnicodeDecodeError, AttributeError):
        return None


async def _close_async(client: Any) -> None:
    close: Callable[[], Awaitable[None]] | None = getattr(client, "aclose", None)
    if close is not None:
        await close()
