"""Redis server-assisted invalidation of hybrid mode's near cache (``CLIENT TRACKING``).

One background thread per engine holds one RESP3 connection with
``CLIENT TRACKING ON BCAST PREFIX <key prefix>``: Redis then pushes the name of every session
key any client changes or deletes — another instance's write, a log-out-everywhere, an
expiry. A copy named is dropped at once, unless this instance wrote it within the last second:
then the change is likely its own write, so the copy is set aside (never served while in
doubt) and rechecked on a second thread, and kept if the record's version and the time of its
last write are still the copy's (``HMGET v a``: every write bumps the version atomically with
its data, so no other write came after this instance's own). Rechecks queued together share
one round trip. So with invalidations flowing, a change made through any instance reaches
every other within the time Redis takes to deliver the message, and copies need no
``near_cache_max_age``.

Robustness: on any error (Redis restart, failover, a killed connection, a socket silent for
too long) every copy is dropped — an invalidation may have been missed — and the thread
reconnects with a growing pause. While it is not connected, ``near_cache_max_age`` bounds
staleness as it does for SQL stores. ``redis+sentinel://`` and ``redis+cluster://`` stores
are not watched (the bound applies).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._extras import missing_extra

try:
    import redis
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "redis", "sessionkit.invalidations") from None

from .stores.redis.connect import OWN_OPTIONS

logger = logging.getLogger("sessionkit")

WATCHED_SCHEMES = ("redis", "rediss", "unix")
POLL_SECONDS = 1.0
#: A silent connection is probed with PING this often (a half-open socket never errors).
PING_SECONDS = 5.0
FIRST_PAUSE_SECONDS = 0.1
MAX_PAUSE_SECONDS = 5.0
CLIENT_NAME = "sessionkit-invalidations"
_BARRIER = "__barrier__:"


def watchable(url: str) -> bool:
    return url.split("://", 1)[0].lower() in WATCHED_SCHEMES


class RedisInvalidations:
    """The watcher thread. ``start`` is idempotent and restarts it in a forked child."""

    def __init__(self, url: str, prefix: str, cache: Any, clock: Callable[[], float]) -> None:
        parts = urlsplit(url)
        own = OWN_OPTIONS  # sessionkit's options, which redis-py's from_url must not see
        query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k not in own}
        query.setdefault("socket_timeout", "2")
        query.setdefault("socket_connect_timeout", "2")
        self._url = parts._replace(query=urlencode(query)).geturl()
        self.prefix = prefix
        self.cache = cache
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rechecker: threading.Thread | None = None
        # (key, tick) to recheck, or (barrier token, 0); None stops the rechecker.
        self._rechecks: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self._pid = 0
        self._start_lock = threading.Lock()
        self._seen = threading.Condition()
        self._barriers: set[str] = set()
        self.connected = False
        self._barrier_client: Any = None

    def start(self) -> None:
        if self._stop.is_set() and self._thread is None and self._pid:
            return  # stopped for good
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._rechecks = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name=CLIENT_NAME, daemon=True)
            self._rechecker = threading.Thread(target=self._recheck_forever,
                                               name=CLIENT_NAME + "-recheck", daemon=True)
            self._thread.start()
            self._rechecker.start()

    def stop(self) -> None:
        """Ask both threads to end (within ``POLL_SECONDS``); does not wait for them."""
        self._stop.set()
        self._rechecks.put(None)
        self._thread = self._rechecker = None
        if self._barrier_client is not None:
            self._barrier_client.close()
            self._barrier_client = None

    def barrier(self, timeout: float = 2.0) -> bool:
        """Wait until every invalidation Redis sent before now has been handled (rechecks
        included); False if that did not happen within ``timeout`` (not connected)."""
        if not self.connected:
            return False
        token = _BARRIER + secrets.token_hex(8)
        with self._seen:
            self._barriers.add(token)
        if self._barrier_client is None:
            self._barrier_client = redis.Redis.from_url(self._url)
        try:
            self._barrier_client.set(self.prefix + token, b"1", px=max(1, int(timeout * 1000)))
        except (redis.exceptions.RedisError, OSError):
            return False
        with self._seen:
            return self._seen.wait_for(lambda: token not in self._barriers, timeout)

    # --- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        pause, failing = FIRST_PAUSE_SECONDS, False
        while not self._stop.is_set():
            try:
                self._watch()
            except Exception as exc:  # any failure: drop every copy, reconnect
                if self.connected or not failing:  # once per outage
                    logger.warning("sessionkit: near-cache invalidations from Redis stopped "
                                   "(%s); copies dropped, reconnecting", exc)
                if self.connected:
                    pause = FIRST_PAUSE_SECONDS
                failing = True
                self._disconnected()
                self._stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
        self._disconnected()

    def _disconnected(self) -> None:
        self.connected = False
        self.cache.watching(None)

    def _watch(self) -> None:
        client = redis.Redis.from_url(self._url, protocol=3, client_name=CLIENT_NAME)
        connection: Any = client.connection_pool.get_connection()
        try:
            handler = getattr(getattr(connection, "_parser", None),
                              "set_invalidation_push_handler", None)
            if handler is None:
                self._stop.set()
                logger.warning("sessionkit: this redis-py cannot read Redis invalidations; "
                               "near-cache copies are trusted for near_cache_max_age")
                return
            handler(_message)
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
            try:
                reply = connection.read_response()
            except redis.exceptions.ResponseError as exc:  # Redis < 6, or an ACL refusing it
                self._stop.set()
                logger.warning("sessionkit: Redis refused CLIENT TRACKING (%s); near-cache "
                               "copies are trusted for near_cache_max_age", exc)
                return
            if reply not in (b"OK", "OK"):
                raise redis.exceptions.ResponseError(f"CLIENT TRACKING answered {reply!r}")
            self.cache.watching(self.clock())
            self.connected = True
            quiet_since = time.monotonic()
            while not self._stop.is_set():
                if connection.can_read(timeout=POLL_SECONDS):
                    self._handle(connection.read_response(push_request=True))
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= PING_SECONDS:
                    self._ping(connection)
                    quiet_since = time.monotonic()
        finally:
            connection.disconnect()
            client.close()

    def _ping(self, connection: Any) -> None:
        connection.send_command("PING")
        while True:
            reply = connection.read_response(push_request=True)
            if reply in (b"PONG", "PONG"):
                return
            self._handle(reply)

    def _handle(self, message: Any) -> None:
        if not (isinstance(message, list) and len(message) == 2
                and message[0] in (b"invalidate", "invalidate")):
            return
        names = message[1]
        if names is None:  # FLUSHDB / FLUSHALL: everything changed
            self.cache.watching(None)
            self.cache.watching(self.clock())
            return
        skip = len(self.prefix)
        keys: list[str] = []
        barriers: list[str] = []
        for name in names:
            text = name.decode() if isinstance(name, bytes) else str(name)
            key = text[skip:]
            (barriers if key.startswith(_BARRIER) else keys).append(key)
        for item in self.cache.invalidated(keys):
            self._rechecks.put(item)
        for token in barriers:  # after the rechecks queued before it
            self._rechecks.put((token, 0))

    def recheck(self, key: str, doubt: int) -> None:
        """Recheck a copy that a write installed after an invalidation arrived."""
        self._rechecks.put((key, doubt))

    def _recheck_forever(self) -> None:
        probe = _Probe(self._url)  # this thread's own connection: never the app's pool
        try:
            while True:
                batch = [self._rechecks.get()]
                while True:  # whatever queued meanwhile goes in the same round trip
                    try:
                        batch.append(self._rechecks.get_nowait())
                    except queue.Empty:
                        break
                items = [item for item in batch if item is not None]
                rechecks = [item for item in items if not item[0].startswith(_BARRIER)]
                if rechecks:
                    now = self.clock()
                    found = probe.versions([self.prefix + key for key, _ in rechecks])
                    for (key, doubt), stored in zip(rechecks, found, strict=True):
                        self.cache.confirm(key, doubt, stored, now)
                barriers = [key for key, _ in items if key.startswith(_BARRIER)]
                if barriers:  # released after the rechecks queued before them
                    with self._seen:
                        self._barriers.difference_update(barriers)
                        self._seen.notify_all()
                if len(items) < len(batch):
                    return
        finally:
            probe.close()


class _Probe:
    """Reads records' versions over one plain connection, commands packed by hand: a redis-py
    pipeline costs about four times the instructions for the same round trip (195k against
    47k for one ``HMGET``, counted under callgrind), once per write in hybrid mode."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None
        self._connection: Any = None

    def versions(self, names: list[str]) -> list[tuple[int, float] | None]:
        """Each record's version and last write or touch time, in one round trip; None for
        a record that is gone or unreadable, and for all of them when Redis cannot answer
        (the copies then go: the store decides at the next read)."""
        try:
            if self._connection is None:
                self._client = redis.Redis.from_url(self._url)
                self._connection = self._client.connection_pool.get_connection()
            connection = self._connection
            connection.send_packed_command(
                connection.pack_commands([("HMGET", name, "v", "a") for name in names]))
            found: list[tuple[int, float] | None] = []
            for _ in names:
                try:
                    version, accessed = connection.read_response()
                    found.append((int(version), float(accessed)))
                except (redis.exceptions.ResponseError, TypeError, ValueError):
                    found.append(None)  # an error reply, a missing or garbled field
            return found
        except Exception:  # down, or anything else: start again on a new connection
            self.close()
            return [None] * len(names)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        client, self._client = self._client, None
        if connection is not None:
            connection.disconnect()
        if client is not None:
            client.close()


def _message(message: Any) -> Any:
    return message
