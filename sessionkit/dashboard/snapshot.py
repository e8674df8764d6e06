"""What the dashboard shows, as JSON: counters of one engine, never a session id or data.

``instance_snapshot(engine)`` reads ``engine.events``; ``cluster_snapshot`` wraps instance
snapshots (one for a single app, one per instance for an aggregator) with their totals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..events import LOOKUPS, Events, Histogram
from ..redact import redact_url

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def _quantiles(histogram: Histogram, scale: float) -> dict[str, Any]:
    """Bucket upper bounds of the quantiles (``"+Inf"`` past the last bucket, ``None`` before
    any observation), in the unit ``scale`` converts to."""
    out: dict[str, Any] = {"count": histogram.count}
    for name, q in QUANTILES.items():
        bound = histogram.quantile(q)
        out[name] = None if bound is None else "+Inf" if math.isinf(bound) else bound * scale
    return out


def near_cache(events: Events) -> dict[str, Any]:
    """The near cache's results and hit rate; the rate is ``None`` (shown as n/a) when the
    engine has no near cache or it has not been asked yet."""
    counts = getattr(events, "near_cache", None)
    if not isinstance(counts, Mapping) or not any(counts.values()):
        return {"hit_rate": None, "counts": dict(counts) if isinstance(counts, Mapping) else {}}
    asked = sum(counts.values())
    return {"hit_rate": counts.get("hit", 0) / asked, "counts": dict(counts)}


def instance_snapshot(engine: Any) -> dict[str, Any]:
    """One instance's counters. ``engine`` is a ``SessionEngine`` (anything with ``events``,
    ``instance_id`` and ``config.store``)."""
    events: Events = engine.events
    return {
        "instance": engine.instance_id,
        "up": True,
        "mode": events.labels["mode"],
        "store": redact_url(engine.config.store),
        "live_sessions": events.live_sessions(),
        "lookups": dict(events.lookups),
        "events": dict(events.counts),
        "near_cache": near_cache(events),
        "store_latency_ms": _quantiles(events.store_latency, 1000.0),
        "cookie_bytes": _quantiles(events.cookie_bytes, 1.0),
    }


def cluster_snapshot(instances: Iterable[dict[str, Any]], *, can_stop: bool = False,
                     ) -> dict[str, Any]:
    """Instance snapshots with the lookups summed over all of them."""
    listed = list(instances)
    totals = dict.fromkeys(LOOKUPS, 0)
    for item in listed:
        for result, n in item.get("lookups", {}).items():
            totals[result] = totals.get(result, 0) + n
    return {"generated_at": time.time(), "instances": listed, "lookups": totals,
            "can_stop": can_stop}
