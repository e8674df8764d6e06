"""Sessions kept as one serialized value each at ``<prefix><id>`` with a TTL: Flask-Session's
``RedisSessionInterface`` and starsessions' ``RedisStore``. A ``RedisStore`` whose steps read
(``GET`` and ``PTTL`` in one round trip) and delete such values."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any, TypeAlias

from .._extras import missing_extra
from ..stores.base import Load, Record

try:
    from ..stores.redis import RedisStore
    from ..stores.redis.connect import Target
    from ..stores.redis.errors import NOT_OURS, reply
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "redis", "sessionkit.peers.redis_source") from None
from .base import PeerSource
from .records import NO_EXPIRY_SECONDS, RecordFormat

logger = logging.getLogger("sessionkit")
RedisSteps: TypeAlias = Generator[list[tuple[str, tuple[Any, ...]]], list[Any], Any]


def expiry_from_ttl(milliseconds: int, now: float) -> float:
    """When a Redis value expires, from its ``PTTL`` (-1: no TTL; -2: gone meanwhile)."""
    if milliseconds == -1:
        return now + NO_EXPIRY_SECONDS
    return now + max(milliseconds, 0) / 1000


class RedisValueSource(PeerSource, RedisStore):
    """Sessions kept as one serialized value each, at ``<prefix><id>`` with a TTL (Flask-Session's
    ``RedisSessionInterface``, starsessions' ``RedisStore``)."""

    record_type = "string"

    def __init__(self, target: Target, *, format: RecordFormat, owns_clients: bool = True,
                 watch_url: str | None = None) -> None:
        # A peer's store is read once per session: nothing to watch (``watch_url`` unused).
        super().__init__(target, owns_clients=owns_clients)
        self.format = format
        self._policy_checked = True  # its eviction policy is its owner's concern

    def load(self, op: Load) -> RedisSteps:
        key = self._key(op.key)
        value, ttl = yield [("get", (key,)), ("pttl", (key,))]
        if value is NOT_OURS:  # another type at that key: not a session of the peer's
            logger.error("sessionkit: %s holds something else than a session at one of its "
                         "session keys; not imported", self.name)
            return None
        if value is None:
            return None
        return self.format.record(value, expiry_from_ttl(ttl, op.now), op.now, self.name)

    def _fetch(self, client: Any, keys: list[bytes]) -> list[tuple[str, Record]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies: list[Any] = [reply(answer) for answer in pipe.execute(raise_on_error=False)]
        now = time.time()
        found = []
        prefix = self.prefix.encode()
        for key, value, ttl in zip(keys, replies[::2], replies[1::2], strict=True):
            if value is None or value is NOT_OURS or not key.startswith(prefix):
                continue
            record = self.format.record(value, expiry_from_ttl(ttl, now), now, self.name)
            if record is not None:
                found.append((key[len(prefix):].decode("utf-8", "replace"), record))
        return found
