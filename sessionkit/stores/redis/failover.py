"""Following a Sentinel failover at once, off the request path.

redis-py looks the master up only when a connection opens, or when the old master answers
``READONLY``. After a ``SENTINEL FAILOVER``, pooled connections kept writing to the old master
for about ten seconds, until the Sentinels turned it into a replica, which then threw those
acknowledged writes away as it resynchronised. Even the ``+switch-master`` announcement comes
about a second after the replica was promoted: too late for writes sent in between.

So ``SwitchWatcher`` follows the failover itself, on every Sentinel, each in a daemon thread
(the request path never waits for it), and records it in the store's ``MasterState``:

* ``+failover-state-send-slaveof-noone`` (the Sentinel is about to promote a replica, and
  names it): from now on connections go to that replica, never to the old master. Until it
  is promoted it answers ``ROLE`` as a replica, the connection is refused, and the command is
  retried within its deadline (a few tens of milliseconds in practice; a 503 at worst, never a
  write the new master will not have);
* ``+switch-master``: the new master, final;
* ``-failover-abort-*``: the promotion is off; connections ask the Sentinels again.

Each record counts one switch; the store's master connections (``follows_switches``) compare
that count before each command they send, and one opened before the switch closes and reopens
itself, in the thread (or task) that owns it, so no socket is closed under another thread's
read. A connection that opens goes where the state says (a Sentinel that has not heard of the
switch yet may still name the old master) and checks ``ROLE``.

A watcher that loses its Sentinel reconnects after a pause and asks for the master's address,
so a switch announced while it was away is still followed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import redis
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.connection
import redis.exceptions
import redis.sentinel

logger = logging.getLogger("sessionkit")

SWITCH = "+switch-master"
PROMOTING = "+failover-state-send-slaveof-noone"
ABORTED = "-failover-abort-*"
POLL_SECONDS = 0.5  # how often an idle watcher looks at its stop flag
RECONNECT_SECONDS = 1.0
#: The longest a promotion is waited for before connections ask the Sentinels again.
PROMOTION_SECONDS = 30.0

Address = tuple[str, int]


@dataclasses.dataclass
class MasterState:
    """Where one store's master connections go; the watcher writes it, connections read it."""

    #: Switches so far: a connection opened before the last one reconnects before its next
    #: command.
    switches: int = 0
    #: The master (or the replica being promoted) connections go to; None: ask the Sentinels.
    target: Address | None = None
    #: Until when (monotonic) ``target`` is a replica being promoted: connections wait for it
    #: and never fall back to the Sentinels' answer, which still names the old master.
    promoting_until: float = 0.0

    def move(self, address: Address, *, promoting: bool = False) -> bool:
        """Send connections to ``address`` from now on; True if that is a change."""
        self.promoting_until = time.monotonic() + PROMOTION_SECONDS if promoting else 0.0
        if address == self.target:
            return False
        first = self.target is None and not promoting
        self.target = address
        if not first:
            self.switches += 1
        return not first

    def forget(self) -> None:
        """Back to asking the Sentinels (a failover aborted, or a target that is no master)."""
        self.target = None
        self.promoting_until = 0.0
        self.switches += 1

    @property
    def promoting(self) -> bool:
        return time.monotonic() < self.promoting_until


class SwitchWatcher:
    """One thread per Sentinel, each following its failover events."""

    def __init__(self, sentinels: Sequence[Address], service: str,
                 options: dict[str, Any], state: MasterState) -> None:
        self.sentinels = list(sentinels)
        self.service = service
        self.options = options
        self.state = state
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._stop.clear()
            for host, port in self.sentinels:
                thread = threading.Thread(target=self._watch, args=(host, port), daemon=True,
                                          name=f"sessionkit-sentinel-{host}:{port}")
                self._threads.append(thread)
                thread.start()

    def stop(self) -> None:
        """Stop every thread (each notices within ``POLL_SECONDS``) and wait for them."""
        self._stop.set()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _move(self, address: Address, *, promoting: bool, why: str) -> None:
        with self._lock:
            moved = self.state.move(address, promoting=promoting)
        if moved:
            logger.warning("sessionkit: %s of %r: connections move to %s:%s", why,
                           self.service, *address)

    def _watch(self, host: str, port: int) -> None:
        while not self._stop.is_set():
            client: Any = redis.Redis(host=host, port=port, **self.options)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(SWITCH, PROMOTING)
                pubsub.psubscribe(ABORTED)
                found: Any = client.sentinel_get_master_addr_by_name(self.service)
                if found and not self.state.promoting:
                    self._move((_text(found[0]), int(found[1])), promoting=False,
                               why="the Sentinels name another master")
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None:
                        self.handle(_text(message.get("channel")), _text(message.get("data")))
            except Exception as exc:  # a watcher reconnects, whatever happened
                if not self._stop.is_set():
                    logger.debug("sessionkit: Sentinel %s:%s watch interrupted: %r",
                                 host, port, exc)
            finally:
                for closable in (pubsub, client):
                    with contextlib.suppress(Exception):
                        closable.close()
            self._stop.wait(RECONNECT_SECONDS)

    def handle(self, channel: str, data: str) -> None:
        """One Sentinel event (the formats are Sentinel's)."""
        words = data.split()
        if channel == SWITCH:  # <service> <old ip> <old port> <new ip> <new port>
            if len(words) == 5 and words[0] == self.service:
                self._move((words[3], int(words[4])), promoting=False,
                           why="the Sentinels switched the master")
        elif channel == PROMOTING:  # slave <name> <ip> <port> @ <service> <ip> <port>
            if len(words) == 8 and words[4] == "@" and words[5] == self.service:
                self._move((words[2], int(words[3])), promoting=True,
                           why="a Sentinel is promoting a replica")
        elif channel.startswith(ABORTED[:-1]) and words[1:2] == [self.service]:
            with self._lock:  # (master <service> <ip> <port>)
                if self.state.promoting:
                    self.state.forget()
                    logger.warning("sessionkit: the failover of %r was aborted (%s)",
                                   self.service, channel)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _target(state: MasterState, looked_up: Any) -> Any:
    """Where a master connection goes: what the watcher learned, else the Sentinels' answer."""
    return state.target if state.target is not None else looked_up


def _not_master(state: MasterState, address: Any,
                reply: Any) -> redis.exceptions.ConnectionError | None:
    """None if ``reply`` (to ``ROLE``) says master; else the error that makes the caller try
    again. A replica being promoted is waited for; any other target that is no master is
    forgotten, so the next try asks the Sentinels."""
    if isinstance(reply, list) and reply and _text(reply[0]) == "master":
        return None
    role = _text(reply[0]) if isinstance(reply, list) and reply else repr(reply)
    if state.promoting and tuple(address) == state.target:
        return redis.exceptions.ConnectionError(
            f"{address} is being promoted and still answers as a {role}")
    if state.target is not None:
        state.forget()
    return redis.exceptions.ConnectionError(
        f"{address} answers as a {role}, not as the master: the Sentinels have not "
        f"seen the failover yet")


class _FollowsSwitches(redis.sentinel.SentinelManagedConnection):
    """A master connection that reconnects after a switch and checks ``ROLE`` as it opens."""

    state: ClassVar[MasterState]
    _seen = -1

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        switches = self.state.switches
        if self._seen != switches:
            self._seen = switches
            connection: Any = self
            if connection._sock is not None:  # opened before the switch
                connection.disconnect()
                connection.connect()
        sender: Any = super()
        sender.send_packed_command(*args, **kwargs)

    def connect_to(self, address: Any) -> None:
        master = self.connection_pool.is_master
        target = _target(self.state, address) if master else address
        connection: Any = super()
        connection.connect_to(target)
        if not master:
            return
        try:
            connection.send_command("ROLE")
            reply = self.read_response()
        except redis.exceptions.ResponseError:  # ROLE not allowed (an ACL): nothing to check
            return
        error = _not_master(self.state, target, reply)
        if error is not None:
            connection.disconnect()
            raise error


class _AsyncFollowsSwitches(redis.asyncio.sentinel.SentinelManagedConnection):
    """The same for ``redis.asyncio``."""

    state: ClassVar[MasterState]
    _seen = -1

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        switches = self.state.switches
        if self._seen != switches:
            self._seen = switches
            connection: Any = self
            if connection.is_connected:
                await connection.disconnect()
                await connection.connect()
        sender: Any = super()
        await sender.send_packed_command(*args, **kwargs)

    async def connect_to(self, address: Any) -> None:
        master = self.connection_pool.is_master
        target = _target(self.state, address) if master else address
        connection: Any = super()
        await connection.connect_to(target)
        if not master:
            return
        try:
            await connection.send_command("ROLE")
            reply = await self.read_response()
        except redis.exceptions.ResponseError:
            return
        error = _not_master(self.state, target, reply)
        if error is not None:
            await connection.disconnect()
            raise error


def follows_switches(state: MasterState, *, ssl: bool, asynchronous: bool) -> type[Any]:
    """The master connection class of one store (its ``state`` is a class attribute)."""
    if asynchronous:
        base: type[Any] = _AsyncFollowsSwitches
        bases: tuple[type[Any], ...] = (base, redis.asyncio.connection.SSLConnection) if ssl \
            else (base,)
    else:
        base = _FollowsSwitches
        bases = (base, redis.connection.SSLConnection) if ssl else (base,)
    return type(f"Sentinel{'SSL' if ssl else ''}MasterConnection", bases, {"state": state})
