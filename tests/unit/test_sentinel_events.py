"""Where a Sentinel store's connections go as a failover unfolds, event by event (the events as
Sentinel publishes them). The failovers themselves run on real processes in
tests/faults/test_redis_failover.py; an aborted failover, which real Sentinels produce only
when a promotion times out, is checked here."""

from __future__ import annotations

from sessionkit.stores.redis.failover import MasterState, SwitchWatcher

OLD, NEW, OTHER = ("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003)


def watcher() -> SwitchWatcher:
    found = SwitchWatcher([("127.0.0.1", 26379)], "mymaster", {}, MasterState())
    found.state.move(OLD)  # what the Sentinels named when the watcher connected
    return found


def promoting(replica: tuple[str, int], service: str = "mymaster") -> tuple[str, str]:
    return ("+failover-state-send-slaveof-noone",
            f"slave {replica[0]}:{replica[1]} {replica[0]} {replica[1]} @ {service} "
            f"{OLD[0]} {OLD[1]}")


def test_the_first_address_moves_no_connection() -> None:
    state = watcher().state
    assert (state.target, state.switches, state.promoting) == (OLD, 0, False)


def test_connections_leave_the_old_master_when_the_promotion_starts() -> None:
    found = watcher()
    found.handle(*promoting(NEW))
    assert (found.state.target, found.state.switches, found.state.promoting) == (NEW, 1, True)
    found.handle("+switch-master", f"mymaster {OLD[0]} {OLD[1]} {NEW[0]} {NEW[1]}")
    assert (found.state.target, found.state.switches, found.state.promoting) == (NEW, 1, False)


def test_a_switch_announced_without_a_promotion_seen_moves_them_too() -> None:
    found = watcher()
    found.handle("+switch-master", f"mymaster {OLD[0]} {OLD[1]} {OTHER[0]} {OTHER[1]}")
    assert (found.state.target, found.state.switches) == (OTHER, 1)


def test_an_aborted_failover_sends_them_back_to_the_sentinels() -> None:
    found = watcher()
    found.handle(*promoting(NEW))
    found.handle("-failover-abort-slave-timeout", f"master mymaster {OLD[0]} {OLD[1]}")
    assert (found.state.target, found.state.promoting) == (None, False)
    assert found.state.switches == 2  # connections to the would-be master reconnect too


def test_other_services_and_garbled_events_change_nothing() -> None:
    found = watcher()
    for channel, data in [
        promoting(NEW, service="othermaster"),
        ("+switch-master", f"othermaster {OLD[0]} {OLD[1]} {NEW[0]} {NEW[1]}"),
        ("+switch-master", "mymaster"),
        ("-failover-abort-not-elected", "master othermaster 127.0.0.1 7001"),
        ("-failover-abort-not-elected", f"master mymaster {OLD[0]} {OLD[1]}"),  # none running
    ]:
        found.handle(channel, data)
    assert (found.state.target, found.state.switches, found.state.promoting) == (OLD, 0, False)
