"""Observability: hooks, built-in counters and Prometheus text for one engine.

Every lookup is classified (``new``, ``hit``, ``not_found``, ``affinity_miss``, ``invalid``)
and counted; lifecycle events (``created``, ``loaded``, ``saved``, ``expired``,
``invalidated``, ``regenerated``, ``affinity_miss``, ``store_error``) are counted and passed to
the hooks registered with ``engine.events.on(name, hook)``. Hooks get an ``Event`` that names
the instance and a keyed hash of the session id, never the id itself; a hook that raises is
logged and never breaks a request.

Metrics are ``sessionkit_*`` with the labels ``instance``, ``store`` and ``mode`` (``local``,
``shared``, ``hybrid``, ``client``), so uneven load and broken affinity show per instance.
"""

from __future__ import annotations

import bisect
import contextvars
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger("sessionkit")

EVENTS = (
    "created", "loaded", "saved", "expired", "invalidated", "regenerated", "affinity_miss",
    "store_error",
)
LOOKUPS = ("new", "hit", "not_found", "affinity_miss", "invalid", "imported")
#: Hybrid mode: how each lookup of a session met this instance's near cache. ``hit`` needed
#: no store round trip; every other result is a store read, by reason (``sessionkit.nearcache``).
NEAR_CACHE = ("hit", "route_elsewhere", "stale_version", "invalidated", "evicted", "not_cached")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
COOKIE_BUCKETS = (128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """What happened, for hooks. ``session`` is a keyed hash: it correlates, never logs in."""

    name: str
    instance: str
    session: str | None = None
    #: For ``affinity_miss``: the instance the cookie named.
    expected_instance: str | None = None
    detail: str | None = None


Hook = Callable[[Event], None]


class Histogram:
    """Cumulative buckets, a sum and a count: the Prometheus histogram shape."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """An upper bound of the ``q`` quantile (the bucket it falls in)."""
        if not self.count:
            return None
        rank, seen = q * self.count, 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")


class Events:
    """Counters and hooks of one engine. Cheap when nobody listens: a locked increment."""

    def __init__(self, instance: str, store: str, mode: str) -> None:
        self.instance = instance
        self.labels = {"instance": instance, "mode": mode, "store": store}
        self.lookups = dict.fromkeys(LOOKUPS, 0)
        self.counts = dict.fromkeys(EVENTS, 0)
        #: Near-cache lookups by result (``NEAR_CACHE``); they stay 0 outside hybrid mode.
        self.near_cache = dict.fromkeys(NEAR_CACHE, 0)
        self.store_latency = Histogram(LATENCY_BUCKETS)
        self.cookie_bytes = Histogram(COOKIE_BUCKETS)
        #: Returns how many sessions this instance holds (local stores), else None.
        self.live_sessions: Callable[[], int | None] = lambda: None
        self._hooks: dict[str, list[Hook]] = {name: [] for name in EVENTS}
        self._lock = threading.Lock()

    def on(self, name: str, hook: Hook | None = None) -> Any:
        """Register ``hook`` for event ``name`` (also usable as a decorator)."""
        if name not in self._hooks:
            raise ValueError(f"unknown event {name!r}; events: {', '.join(EVENTS)}")

        def register(function: Hook) -> Hook:
            self._hooks[name].append(function)
            return function

        return register(hook) if hook is not None else register

    def lookup(self, result: str) -> None:
        with self._lock:
            self.lookups[result] += 1

    def loaded(self, hasher: Callable[[str | None], Callable[[], str | None]],
               token: str | None) -> None:
        """A lookup that found its session: one locked update of both counters, and the
        ``loaded`` hooks, if any (``hasher(token)`` gives them the hashed id: it is not even
        asked for without them)."""
        with self._lock:
            self.lookups["hit"] += 1
            self.counts["loaded"] += 1
        if self._hooks["loaded"]:
            self._call("loaded", hasher(token))

    def near(self, result: str) -> None:
        with self._lock:
            self.near_cache[result] += 1

    def emit(self, name: str, session: Callable[[], str | None] | None = None, **fields: Any
             ) -> None:
        """Count ``name`` and call its hooks. ``session`` gives the hashed id, only computed
        when a hook will see it."""
        with self._lock:
            self.counts[name] += 1
        if self._hooks[name]:
            self._call(name, session, **fields)

    def _call(self, name: str, session: Callable[[], str | None] | None, **fields: Any
              ) -> None:
        event = Event(name, self.instance, session() if session else None, **fields)
        for hook in self._hooks[name]:
            try:
                hook(event)
            except Exception:
                logger.exception("sessionkit: %s hook %r failed", name, hook)

    def observe_store(self, seconds: float) -> None:
        with self._lock:
            self.store_latency.observe(seconds)

    def observe_cookie(self, size: int) -> None:
        with self._lock:
            self.cookie_bytes.observe(float(size))

    # --- exposition ---------------------------------------------------------------------------
    def prometheus_text(self) -> str:
        """The metrics in the Prometheus text format (version 0.0.4)."""
        return "".join(f"{line}\n" for line in self._lines())

    def _lines(self) -> Iterator[str]:
        base = _labels(self.labels)
        yield "# HELP sessionkit_lookups_total Session lookups by result."
        yield "# TYPE sessionkit_lookups_total counter"
        for result, n in self.lookups.items():
            yield f"sessionkit_lookups_total{_labels({**self.labels, 'result': result})} {n}"
        yield "# HELP sessionkit_events_total Session lifecycle events."
        yield "# TYPE sessionkit_events_total counter"
        for name, n in self.counts.items():
            yield f"sessionkit_events_total{_labels({**self.labels, 'event': name})} {n}"
        if self.labels["mode"] == "hybrid":
            yield "# HELP sessionkit_near_cache_total Hybrid mode: lookups by near-cache result."
            yield "# TYPE sessionkit_near_cache_total counter"
            for result, n in self.near_cache.items():
                labels = _labels({**self.labels, "result": result})
                yield f"sessionkit_near_cache_total{labels} {n}"
        yield "# HELP sessionkit_store_errors_total Store operations that failed (store down)."
        yield "# TYPE sessionkit_store_errors_total counter"
        yield f"sessionkit_store_errors_total{base} {self.counts['store_error']}"
        live = self.live_sessions()
        if live is not None:
            yield "# HELP sessionkit_live_sessions Sessions held by this instance."
            yield "# TYPE sessionkit_live_sessions gauge"
            yield f"sessionkit_live_sessions{base} {live}"
        yield from _histogram("sessionkit_store_latency_seconds",
                              "Store operation latency.", self.store_latency, self.labels)
        yield from _histogram("sessionkit_cookie_bytes", "Size of Set-Cookie values sent.",
                              self.cookie_bytes, self.labels)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _histogram(name: str, help_: str, histogram: Histogram, labels: dict[str, str]
               ) -> Iterator[str]:
    yield f"# HELP {name} {help_}"
    yield f"# TYPE {name} histogram"
    cumulative = 0
    for bound, n in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += n
        le = "+Inf" if bound == float("inf") else repr(bound)
        yield f"{name}_bucket{_labels({**labels, 'le': le})} {cumulative}"
    yield f"{name}_sum{_labels(labels)} {histogram.sum!r}"
    yield f"{name}_count{_labels(labels)} {histogram.count}"


# --- the current request, for log records and spans ----------------------------------------
class RequestContext:
    """The session facts of the request being served (for log records and spans)."""

    __slots__ = ("_hash", "_session_hash", "expected_instance", "instance", "lookup")

    def __init__(self, instance: str, session_hash: Callable[[], str | None], lookup: str,
                 expected_instance: str | None) -> None:
        self.instance = instance
        self.lookup = lookup
        self.expected_instance = expected_instance
        self._session_hash = session_hash
        self._hash: str | None = None

    @property
    def session(self) -> str | None:
        """Keyed hash of the session id (computed on first use: it costs an HMAC)."""
        if self._hash is None:
            self._hash = self._session_hash()
        return self._hash


current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "sessionkit_request", default=None
)
#: Whether anyone reads ``current`` (a ``SessionLogFilter``, ``sessionkit.telemetry``):
#: until then a request sets no context, which would cost an object and a context write.
#: A one-item list, read as ``CONTEXT_WANTED[0]`` by the engine (no call per request).
CONTEXT_WANTED = [False]


def want_request_context() -> None:
    """From now on every request sets ``current`` (called by its readers)."""
    CONTEXT_WANTED[0] = True


class SessionLogFilter(logging.Filter):
    """Adds ``session_hash``, ``instance_id``, ``session_lookup`` and ``affinity_miss`` to every
    log record made while a request is served, for structured logging::

        handler.addFilter(SessionLogFilter())
        logging.Formatter("%(instance_id)s %(session_hash)s %(message)s")
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        want_request_context()

    def filter(self, record: logging.LogRecord) -> bool:
        context = current.get()
        record.instance_id = context.instance if context else None
        record.session_hash = context.session if context else None
        record.session_lookup = context.lookup if context else None
        record.affinity_miss = bool(context and context.lookup == "affinity_miss")
        return True
