"""Hybrid mode behind real HAProxy (the config ``sessionkit lb-config haproxy`` renders) in front
of three real instances over one real Redis: the balancer routes on the cookie's suffix as
before (the write stamp sits before the ``.``), the near caches serve the routed reads, and
killing an instance loses no cart. The near-cache hit rate is measured from /metrics and
printed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.e2e.lb import (
    INSTANCE_IDS,
    Cluster,
    cluster,
    problems,
    resume_flow,
    run_clients,
    scrape,
    shop_clients,
    shopping_flow,
)
from tests.stores import REDIS_ENV, flush_redis
from tests.support import service_url

CLIENTS = 60
VICTIM = "a"


def near_cache(started: Cluster, instances: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for instance_id in instances:
        samples = scrape(started.urls[instance_id])
        assert samples is not None, f"{instance_id} serves no /metrics"
        for sample in samples:
            if sample.name == "sessionkit_near_cache_total":
                result = sample.labels["result"]
                counts[result] = counts.get(result, 0) + int(sample.value)
    return counts


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_hybrid_behind_haproxy_hits_locally_and_loses_nothing_on_a_kill(
    framework: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    with cluster("haproxy", framework, tmp_path, SESSIONKIT_STORE=url,
                 SESSIONKIT_NEAR_CACHE="1") as started, \
            shop_clients(started.url, CLIENTS) as clients:
        run_clients(clients, shopping_flow)
        assert not problems(clients), "\n".join(problems(clients)) + "\n" + started.logs()
        assert {c.route for c in clients} == set(INSTANCE_IDS)
        steady = near_cache(started, INSTANCE_IDS)
        survivors = [i for i in INSTANCE_IDS if i != VICTIM]
        before = near_cache(started, survivors)
        on_victim = sum(c.route == VICTIM for c in clients)
        started.instances[VICTIM].kill()
        outcomes = run_clients(clients, lambda c: resume_flow(c, VICTIM, sticky=False))
        assert not problems(clients), "\n".join(problems(clients)) + "\n" + started.logs()
        after = near_cache(started, survivors)
        lookups = sum(c.requests for c in clients)
    assert all(o.kept_cart for o in outcomes), "a cart was lost with its instance"
    assert sum(o.moved for o in outcomes) == on_victim > 0
    hits, total_lookups = steady["hit"], sum(steady.values())
    # Behind a balancer that honours the route, every lookup of a session is a hit, but for
    # the few that arrive while Redis's invalidation of the client's own write is rechecked.
    assert steady["hit"] + steady["invalidated"] == total_lookups > 0, steady
    assert hits >= 0.8 * total_lookups, steady
    # After the kill, each of the victim's clients is read from the store once (its cookie
    # names the dead instance), then re-routed to a survivor, whose copy serves the rest.
    moved = {k: after[k] - before[k] for k in after}
    assert moved["route_elsewhere"] == on_victim, moved
    assert moved["hit"] + moved["route_elsewhere"] + moved["invalidated"] == sum(
        moved.values()), moved
    with capsys.disabled():
        rate = hits / total_lookups
        print(f"\nhybrid behind haproxy ({framework}): {CLIENTS} clients, {lookups} requests; "
              f"steady near-cache hit rate {rate:.1%} ({hits}/{total_lookups}); after killing "
              f"{VICTIM}: survivors' near-cache lookups {moved}")

