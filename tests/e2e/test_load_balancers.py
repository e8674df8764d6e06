"""HAProxy and nginx, configured by ``sessionkit.deploy``, in front of three real instances of
each example (FastAPI under uvicorn, Flask under gunicorn), with 100 browsers shopping at once.

Local mode: every client must stay on the instance holding its session, and when an instance
is killed exactly its clients lose their carts (and are served by the others); a shared store
loses nothing; a local instance that drains to a shared store on SIGTERM loses nothing either.
Each run adds a row to ``RESULTS``, printed as a table at the end of the module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx2
import pytest

from sessionkit.config import SessionConfig
from tests.e2e.lb import (
    INSTANCE_IDS,
    AfterFailure,
    Cluster,
    ShopClient,
    balancer,
    cluster,
    name_servers,
    problems,
    resume_flow,
    run_clients,
    scrape,
    shop_clients,
    shopping_flow,
    total,
)
from tests.stores import REDIS_ENV, flush_redis
from tests.support import service_url

LBS = ["haproxy", "nginx"]
FRAMEWORKS = ["fastapi", "flask"]
CLIENTS = 100
VICTIM = "a"
DRAIN_SETTINGS = {"drain_to", "on_affinity_miss", "fallback_store"}
#: A session id as sessionkit writes it: 64 base64url characters, never a '.'.
TOKEN = "Ab-_" * 16


@dataclasses.dataclass
class Row:
    lb: str
    framework: str
    mode: str
    clients: int
    requests: int
    sessions_min: int
    sessions_max: int
    on_victim: int
    carts_lost: int
    misses_before: int | None
    misses_after: int | None
    seconds: float


#: Every run's numbers, reported as a table when the module is done.
RESULTS: list[Row] = []
_COLUMNS = ("lb", "framework", "mode", "clients", "requests", "sessions/instance min-max",
            f"clients on {VICTIM}", "carts lost", "affinity misses before/after", "seconds")


def format_table(rows: Sequence[Row]) -> str:
    def misses(value: int | None) -> str:
        return "n/a" if value is None else str(value)

    cells = [_COLUMNS] + [
        (r.lb, r.framework, r.mode, str(r.clients), str(r.requests),
         f"{r.sessions_min}-{r.sessions_max}", str(r.on_victim), str(r.carts_lost),
         f"{misses(r.misses_before)}/{misses(r.misses_after)}", f"{r.seconds:.1f}")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None:
        return
    # teardown output is captured like a test's; the table is meant to be seen
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line("load balancers x frameworks x modes:")
        for line in format_table(RESULTS).splitlines():
            reporter.write_line(line)


def affinity_misses(started: Cluster, instances: Sequence[str]) -> int | None:
    """Affinity misses summed over ``instances``; None while the apps serve no ``/metrics``."""
    found = 0.0
    for instance_id in instances:
        samples = scrape(started.urls[instance_id])
        if samples is None:
            return None
        found += total(samples, "sessionkit_lookups_total", result="affinity_miss")
    return int(found)


def live_sessions(started: Cluster) -> dict[str, int] | None:
    counts = {}
    for instance_id in INSTANCE_IDS:
        samples = scrape(started.urls[instance_id])
        if samples is None:
            return None
        counts[instance_id] = int(total(samples, "sessionkit_live_sessions"))
    return counts


def shop_until_steady(started: Cluster, clients: list[ShopClient],
                      ) -> tuple[Counter[str], int | None]:
    """Every client shops; each must stay on one instance and find its cart intact."""
    run_clients(clients, shopping_flow)
    assert not problems(clients), "\n".join(problems(clients)) + "\n" + started.logs()
    on = Counter(client.route for client in clients if client.route is not None)
    assert sum(on.values()) == len(clients), "a client ended without a session cookie"
    assert set(on) == set(INSTANCE_IDS), f"round robin left an instance without clients: {on}"
    misses = affinity_misses(started, INSTANCE_IDS)
    assert misses in (None, 0), f"{misses} affinity misses while every instance was up"
    return on, misses


def after_failure(started: Cluster, clients: list[ShopClient], sticky: bool,
                  ) -> list[AfterFailure]:
    outcomes = run_clients(clients, lambda c: resume_flow(c, VICTIM, sticky))
    assert not problems(clients), "\n".join(problems(clients)) + "\n" + started.logs()
    return outcomes


def record(started: Cluster, mode: str, clients: list[ShopClient], on: Counter[str],
           outcomes: list[AfterFailure], misses: tuple[int | None, int | None],
           began: float) -> Row:
    row = Row(
        started.lb, started.framework, mode, len(clients), sum(c.requests for c in clients),
        min(on.values()), max(on.values()), on[VICTIM],
        sum(not o.kept_cart for o in outcomes), *misses, time.monotonic() - began,
    )
    RESULTS.append(row)
    print(format_table([row]))
    return row


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("lb", LBS)
def test_local_mode_keeps_clients_on_their_instance_and_a_crash_loses_only_its_carts(
    lb: str, framework: str, tmp_path: Path,
) -> None:
    began = time.monotonic()
    with cluster(lb, framework, tmp_path, SESSIONKIT_STORE="memory://") as started, \
            shop_clients(started.url, CLIENTS) as clients:
        on, before = shop_until_steady(started, clients)
        live = live_sessions(started)
        assert live in (None, dict(on)), f"live sessions {live}, clients per instance {on}"
        started.instances[VICTIM].kill()
        outcomes = after_failure(started, clients, sticky=True)
        after = affinity_misses(started, [i for i in INSTANCE_IDS if i != VICTIM])
    row = record(started, "local, kill -9", clients, on, outcomes, (before, after), began)
    moved = [o for o in outcomes if o.moved]
    assert len(moved) == on[VICTIM] > 0
    assert all(not o.kept_cart for o in moved), "a cart survived its instance's death"
    assert all(o.kept_cart for o in outcomes if not o.moved), "a surviving instance lost carts"
    assert row.carts_lost == on[VICTIM]
    assert after in (None, on[VICTIM]), (
        f"{after} affinity misses on the survivors, {on[VICTIM]} clients came from {VICTIM}")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("lb", LBS)
def test_shared_store_loses_no_cart_when_an_instance_is_killed(
    lb: str, framework: str, tmp_path: Path,
) -> None:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    began = time.monotonic()
    with cluster(lb, framework, tmp_path, SESSIONKIT_STORE=url) as started, \
            shop_clients(started.url, CLIENTS) as clients:
        on, before = shop_until_steady(started, clients)
        started.instances[VICTIM].kill()
        outcomes = after_failure(started, clients, sticky=False)
        after = affinity_misses(started, [i for i in INSTANCE_IDS if i != VICTIM])
    row = record(started, "redis, kill -9", clients, on, outcomes, (before, after), began)
    assert sum(o.moved for o in outcomes) == on[VICTIM] > 0
    assert row.carts_lost == 0
    assert after in (None, 0), "a shared store has no affinity to miss"


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("lb", LBS)
def test_local_instance_draining_on_sigterm_hands_its_carts_over(
    lb: str, framework: str, tmp_path: Path,
) -> None:
    missing = DRAIN_SETTINGS - {f.name for f in dataclasses.fields(SessionConfig)}
    if missing:
        pytest.skip(f"the engine has no {', '.join(sorted(missing))} settings yet")
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    began = time.monotonic()
    env = {"SESSIONKIT_STORE": "memory://", "SESSIONKIT_DRAIN_TO": url,
           "SESSIONKIT_ON_AFFINITY_MISS": "fallback", "SESSIONKIT_FALLBACK_STORE": url}
    with cluster(lb, framework, tmp_path, **env) as started, \
            shop_clients(started.url, CLIENTS) as clients:
        on, before = shop_until_steady(started, clients)
        status = started.instances[VICTIM].terminate()
        # uvicorn re-raises the SIGTERM once it has shut down, so -15 is a clean exit too
        assert status in (0, -signal.SIGTERM), f"{VICTIM} exited with {status}:\n{started.logs()}"
        outcomes = after_failure(started, clients, sticky=True)
        after = affinity_misses(started, [i for i in INSTANCE_IDS if i != VICTIM])
    row = record(started, "local, drain on SIGTERM", clients, on, outcomes, (before, after),
                 began)
    assert sum(o.moved for o in outcomes) == on[VICTIM] > 0
    assert row.carts_lost == 0, f"{row.carts_lost} carts lost although {VICTIM} drained"
    assert after in (None, 0), f"{after} clients of {VICTIM} were not found in the fallback store"


@pytest.mark.parametrize("cookie", ["session", "__Host-it's$#x"])
@pytest.mark.parametrize("lb", LBS)
def test_generated_rules_route_on_the_suffix_after_the_last_dot(
    lb: str, cookie: str, tmp_path: Path,
) -> None:
    """Instance ids with '-' (nginx's \\w has no '-'), and a cookie name that nginx cannot
    spell as $cookie_<name> and HAProxy must escape, each reach their instance."""
    names = ["shop-1", "shop-2", "a"]
    with name_servers(names) as addresses, balancer(lb, addresses, tmp_path, cookie) as url, \
            httpx2.Client(base_url=url, timeout=5) as http:

        def served(cookie_header: str | None) -> str:
            headers = {"Cookie": cookie_header} if cookie_header is not None else {}
            response = http.get("/cart", headers=headers)
            assert response.status_code == 200, response.text
            return response.text

        for name in names:
            assert {served(f"{cookie}={TOKEN}.{name}") for _ in range(6)} == {name}
            assert served(f"other={TOKEN}.b; {cookie}={TOKEN}.{name}; x=y") == name
        # without a usable route: round robin over every instance
        assert {served(None) for _ in range(9)} == set(names)
        assert {served(f"{cookie}={TOKEN}.gone") for _ in range(9)} == set(names)
        assert {served(f"{cookie}={TOKEN}") for _ in range(9)} == set(names)
