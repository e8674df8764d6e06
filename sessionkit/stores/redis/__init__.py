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

Under failure (the modules of this package, one job each):

* ``errors``: every redis-py error is classified by one rule, so an outage is a 503 with
  ``Retry-After`` and never a fresh, empty session;
* ``deadline``: one deadline per operation (``deadline=3`` seconds by default), retries
  included;
* ``failover``: on Sentinel deployments, connections to a replaced master are dropped as soon
  as a Sentinel announces the switch;
* ``connect``: the options each URL form takes and the clients made from them
  (``RedisStore.from_client`` takes clients the application made).
"""

from ..._extras import missing_extra

try:
    from .store import RedisStore
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    if (exc.name or "").split(".")[0] != "redis":
        raise
    raise missing_extra(exc, "redis", "sessionkit.stores.redis") from None

__all__ = ["RedisStore"]
