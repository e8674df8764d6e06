"""prometheus_client integration (``pip install 'sessionkit[prometheus]'``).

``register(engine)`` adds the engine's ``sessionkit_*`` metrics to a prometheus_client
registry, so an app that already exposes ``/metrics`` with prometheus_client gets them there.
Apps without prometheus_client can serve ``engine.events.prometheus_text()`` themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._extras import missing_extra

try:
    from prometheus_client.core import (
        REGISTRY,
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.registry import Collector
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "prometheus", "sessionkit.prometheus") from None

from .engine import SessionEngine
from .events import Events, Histogram


class SessionCollector(Collector):
    def __init__(self, events: Events) -> None:
        self.events = events

    def collect(self) -> Iterator[Any]:
        events = self.events
        names, values = list(events.labels), list(events.labels.values())
        lookups = CounterMetricFamily("sessionkit_lookups", "Session lookups by result.",
                                      labels=[*names, "result"])
        for result, n in events.lookups.items():
            lookups.add_metric([*values, result], n)
        yield lookups
        lifecycle = CounterMetricFamily("sessionkit_events", "Session lifecycle events.",
                                        labels=[*names, "event"])
        for name, n in events.counts.items():
            lifecycle.add_metric([*values, name], n)
        yield lifecycle
        if events.labels["mode"] == "hybrid":
            near = CounterMetricFamily("sessionkit_near_cache",
                                       "Hybrid mode: lookups by near-cache result.",
                                       labels=[*names, "result"])
            for result, n in events.near_cache.items():
                near.add_metric([*values, result], n)
            yield near
        errors = CounterMetricFamily("sessionkit_store_errors",
                                     "Store operations that failed (store down).", labels=names)
        errors.add_metric(values, events.counts["store_error"])
        yield errors
        live = events.live_sessions()
        if live is not None:
            gauge = GaugeMetricFamily("sessionkit_live_sessions",
                                      "Sessions held by this instance.", labels=names)
            gauge.add_metric(values, live)
            yield gauge
        yield _histogram("sessionkit_store_latency_seconds", "Store operation latency.",
                         events.store_latency, names, values)
        yield _histogram("sessionkit_cookie_bytes", "Size of Set-Cookie values sent.",
                         events.cookie_bytes, names, values)


def _histogram(name: str, help_: str, histogram: Histogram, names: list[str],
               values: list[str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_, labels=names)
    buckets, cumulative = [], 0
    for bound, n in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += n
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    family.add_metric(values, buckets, histogram.sum)
    return family


def register(engine: SessionEngine, registry: Any = REGISTRY) -> SessionCollector:
    """Expose ``engine``'s metrics through ``registry`` (default: prometheus_client's)."""
    collector = SessionCollector(engine.events)
    registry.register(collector)
    return collector
