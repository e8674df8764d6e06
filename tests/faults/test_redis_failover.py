"""Redis failovers and crashes under load, on real processes: a Cluster of three masters with
a replica each, and a master with one replica watched by three Sentinels.

Each scenario serves the test app four ways at once (Flask, FastAPI, and each in hybrid mode)
over real HTTP, three threads per app writing to thirty sessions, breaks Redis, and prints
what users saw: answers 200 / 503 / other, fresh-session answers, acknowledged writes missing
afterwards, and the seconds to recovery (from the fault to the last answer that was not a
200). In every scenario: no other answer (no 500, no dropped connection), no fresh session,
every 503 with ``Retry-After``, and 200s again without a restart. A manual failover loses no
acknowledged write; for a crash the number is printed (docs/operations.md states the bound).
The whole module takes about a minute and a half.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.faults.failover_load import Outcome, run
from tests.redis_servers import SERVICE, ClusterNodes, SentinelGroup, admin, ask, wait_until

FAULT_SECONDS = 30  # the most a scenario waits for the deployment to act
#: Every scenario's tables, shown when the module is done (CI logs keep them, pass or fail).
OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or not OUTCOMES:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line("Redis failovers and crashes under load:")
        for outcome in OUTCOMES:
            for line in outcome.table().splitlines():
                reporter.write_line(line)


def check(outcome: Outcome, *, lossless: bool, must_fail: bool) -> None:
    OUTCOMES.append(outcome)
    for tally in outcome.tallies:
        label = f"{outcome.title}, {tally.variant.label}"
        assert tally.other == [], f"{label}: {tally.other[:5]}"
        assert tally.bad_503 == [], f"{label}: {tally.bad_503[:5]}"
        assert tally.fresh == 0, f"{label}: {tally.fresh} fresh sessions"
        assert tally.recovered, f"{label}: no 200 after the last failure"
        assert tally.statuses[200] > 0
        if lossless:
            assert tally.lost == 0, f"{label}: {tally.lost} acknowledged writes lost"
        if must_fail:  # the fault reached the users (or this test would prove nothing)
            assert tally.statuses[503] > 0, f"{label}: the fault was never seen"


# --- Cluster ---------------------------------------------------------------------------------
def test_cluster_manual_failover(replicated_cluster: ClusterNodes) -> None:
    nodes = replicated_cluster

    def fault() -> None:
        victim = nodes.masters()[0]
        replica = nodes.replica_of(victim)
        ask(replica, "CLUSTER", "FAILOVER")
        wait_until("the replica promoted", lambda: replica in nodes.masters(), FAULT_SECONDS)

    check(run("Cluster: CLUSTER FAILOVER", nodes.url, fault), lossless=True, must_fail=False)


def test_cluster_master_killed(replicated_cluster: ClusterNodes) -> None:
    nodes = replicated_cluster

    def fault() -> None:
        victim = nodes.masters()[0]
        replica = nodes.replica_of(victim)
        nodes.processes.kill(victim)
        wait_until("the replica promoted", lambda: replica in nodes.masters()
                   and nodes.state(replica) == "ok", FAULT_SECONDS)

    check(run("Cluster: kill -9 a master", nodes.url, fault), lossless=False, must_fail=True)


def test_cluster_master_hung_until_the_cluster_is_down(replicated_cluster: ClusterNodes) -> None:
    nodes = replicated_cluster

    def fault() -> None:
        victim = nodes.masters()[0]
        replica = nodes.replica_of(victim)
        ask(replica, "CONFIG", "SET", "cluster-replica-no-failover", "yes")
        nodes.processes.pause(victim)
        try:
            wait_until("cluster_state:fail", lambda: nodes.state(replica) == "fail",
                       FAULT_SECONDS)
        finally:
            nodes.processes.resume(victim)
        wait_until("cluster_state:ok", lambda: all(nodes.state(p) == "ok" for p in nodes.ports),
                   FAULT_SECONDS)

    outcome = run("Cluster: SIGSTOP a master until CLUSTERDOWN", nodes.url, fault)
    check(outcome, lossless=True, must_fail=True)  # a hang loses nothing


# --- Sentinel --------------------------------------------------------------------------------
def test_sentinel_manual_failover(sentinel_group: SentinelGroup) -> None:
    group = sentinel_group

    def fault() -> None:
        old = group.master
        ask(group.sentinel_ports[0], "SENTINEL", "FAILOVER", SERVICE)
        wait_until("the switch", lambda: group.master != old, FAULT_SECONDS)

    outcome = run("Sentinel: SENTINEL FAILOVER", group.url, fault, after=2.0)
    check(outcome, lossless=True, must_fail=False)


def test_sentinel_master_killed(sentinel_group: SentinelGroup) -> None:
    group = sentinel_group

    def fault() -> None:
        old = group.master
        group.processes.kill(old)
        wait_until("the switch", lambda: group.master != old, FAULT_SECONDS)
        new = group.master
        wait_until("the new master", lambda: admin(new).info("replication")["role"] == "master",
                   FAULT_SECONDS)

    check(run("Sentinel: kill -9 the master", group.url, fault), lossless=False, must_fail=True)


@pytest.fixture(autouse=True)
def _quiet_sessionkit_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Thousands of 503s are logged; keep what pytest shows on failure readable."""
    caplog.set_level("WARNING", logger="sessionkit")
