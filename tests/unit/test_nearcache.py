"""The near cache's rule, step by step: which copy may serve a read, and which store reads and
writes may (re)place a copy when requests on one instance interleave."""

from __future__ import annotations

from sessionkit.nearcache import NearCache
from sessionkit.stores.base import Record

NOW = 1_000.0
MAX_AGE = 30.0


def record(**fields: str) -> Record:
    return Record(dict(fields), NOW - 10, NOW + 3600, NOW, None)


def serve(cache: NearCache, key: str = "k", stamp: str = "s1", now: float = NOW
          ) -> tuple[dict[str, str] | None, str]:
    found, reason = cache.lookup(key, stamp, now, MAX_AGE)
    return (found.fields if found is not None else None), reason


def test_a_copy_serves_only_its_own_stamp_within_max_age_and_before_expiry() -> None:
    cache = NearCache(10)
    assert serve(cache) == (None, "not_cached")
    assert cache.install("k", record(cart="1"), "s1", NOW, cache.tick())
    assert serve(cache) == ({"cart": "1"}, "hit")
    assert serve(cache, stamp="s0") == (None, "stale_version")
    assert serve(cache, now=NOW + MAX_AGE) == (None, "invalidated")
    assert serve(cache, now=NOW + 3600) == (None, "invalidated")  # past its known expiry


def test_a_write_in_flight_is_never_served_and_its_exact_result_is() -> None:
    cache = NearCache(10)
    cache.install("k", record(cart="1"), "s1", NOW, cache.tick())
    ticket, base = cache.begin_write("k")
    assert base is not None and base.fields == {"cart": "1"}
    assert serve(cache) == (None, "stale_version")
    cache.end_write("k", ticket, record(cart="2"), "s2")
    assert serve(cache, stamp="s2") == ({"cart": "2"}, "hit")


def test_two_writes_in_flight_leave_no_copy_whatever_order_they_end_in() -> None:
    for first_ends_first in (True, False):
        cache = NearCache(10)
        cache.install("k", record(cart="1"), "s1", NOW, cache.tick())
        one, base_one = cache.begin_write("k")
        two, base_two = cache.begin_write("k")
        assert base_one is not None and base_two is None  # the second cannot know the result
        endings = [(one, "s2"), (two, "s3")]
        for ticket, stamp in endings if first_ends_first else endings[::-1]:
            cache.end_write("k", ticket, record(cart=stamp) if ticket == one else None, stamp)
            assert serve(cache, stamp="s2")[0] is None
        assert len(cache) == 0


def test_a_store_read_that_began_before_a_change_here_installs_nothing() -> None:
    cache = NearCache(10)
    # Before a write that ends: the write's copy wins.
    since = cache.tick()
    cache.created("k", record(cart="new"), "s2")
    assert not cache.install("k", record(cart="old"), "s1", NOW, since)
    assert serve(cache, stamp="s2") == ({"cart": "new"}, "hit")
    # Before a destroy: the destroyed session never comes back from that read.
    since = cache.tick()
    cache.drop("k")
    assert not cache.install("k", record(cart="new"), "s2", NOW, since)
    assert serve(cache, stamp="s2") == (None, "invalidated")
    # A read that began after the destroy may install (it read the store after it).
    assert cache.install("k", record(cart="later"), "s2", NOW, cache.tick())


def test_forgotten_tombstones_still_refuse_older_reads() -> None:
    cache = NearCache(2)
    since = cache.tick()
    cache.drop("k")
    for other in ("x", "y", "z"):  # push the tombstone of k out of the bounded list
        cache.drop(other)
    assert not cache.install("k", record(cart="1"), "s1", NOW, since)


def test_eviction_is_least_recently_used_and_remembered_as_the_reason() -> None:
    cache = NearCache(2)
    for key in ("a", "b"):
        cache.install(key, record(), "s", NOW, cache.tick())
    assert serve(cache, "a", "s")[1] == "hit"  # a is now the most recently used
    cache.install("c", record(), "s", NOW, cache.tick())
    assert serve(cache, "b", "s") == (None, "evicted")
    assert serve(cache, "a", "s")[1] == "hit"


def test_log_out_everywhere_drops_every_copy_of_the_user() -> None:
    cache = NearCache(10)
    for key, user in (("a", "ada"), ("b", "bob"), ("c", "ada")):
        cache.install(key, Record({}, NOW, NOW + 60, NOW, user), "s", NOW, cache.tick())
    assert cache.drop_user("ada") == 2
    assert [serve(cache, key, "s")[1] for key in "abc"] == ["invalidated", "hit", "invalidated"]


def test_a_store_invalidation_drops_a_copy_this_instance_did_not_just_write() -> None:
    cache = NearCache(10)
    cache.install("k", record(cart="1"), "s1", NOW, cache.tick())
    assert cache.invalidated(["k", "unknown"]) == []
    assert serve(cache) == (None, "invalidated")


def test_an_invalidation_right_after_an_own_write_is_rechecked() -> None:
    """Kept only while the store's record has the copy's version and last write time."""
    cache = NearCache(10)
    mine = record(cart="1")
    for store_holds, kept in (((mine.version, mine.accessed_at), True),
                              ((mine.version + 1, mine.accessed_at), False),  # a later write
                              ((mine.version, mine.accessed_at + 1), False),  # one with no v
                              (None, False)):  # gone
        cache.created("k", mine, "s1")
        [(key, doubt)] = cache.invalidated(["k"])
        assert serve(cache) == (None, "invalidated")  # in doubt: never served meanwhile
        cache.confirm(key, doubt, store_holds, NOW)
        assert serve(cache)[1] == ("hit" if kept else "invalidated")


def test_an_invalidation_during_a_store_read_keeps_the_read_out() -> None:
    cache = NearCache(10)
    since = cache.begin_load("k")
    assert cache.invalidated(["k"]) == []
    assert not cache.install("k", record(cart="old"), "s1", NOW, since)
    cache.end_load("k")
    assert cache.install("k", record(cart="new"), "s1", NOW, cache.begin_load("k"))
