"""The store conformance kit: one pytest suite that any store runs to prove it keeps the
contract of ``sessionkit.stores.base`` (docs/writing-a-store.md), on both faces.

A store written outside sessionkit proves itself with a few lines::

    import pytest
    from sessionkit.testing import StoreContract
    from mypackage import MyStore

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            store = MyStore(...)      # empty, as each test expects
            yield store
            store.close()

Every test runs twice, through ``execute`` (sync) and through ``aexecute`` (async, on one
event loop per test). Needs pytest (``pip install 'sessionkit[testing]'``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

from ._extras import missing_extra

try:
    import pytest
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "testing", "sessionkit.testing") from None

from .stores.base import (
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    Op,
    Record,
    Store,
    Touch,
    Update,
)

R = TypeVar("R")
IDLE = 3600.0
ABSOLUTE = 7 * 86400.0


class Face:
    """Performs operations on a store through one of its faces."""

    def __init__(self, store: Store, kind: str) -> None:
        self.store = store
        self.kind = kind
        self._loop = asyncio.new_event_loop() if kind == "async" else None

    def __call__(self, op: Op[R]) -> R:
        if self._loop is None:
            return self.store.execute(op)
        return self._loop.run_until_complete(self.store.aexecute(op))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self.store.aclose())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()


def _key(name: str) -> str:
    """A key of the shape the engine uses (43 characters of base64url)."""
    return (name + "-" * 43)[:43].replace(" ", "_")


def _record(fields: dict[str, str] | None = None, *, now: float, user: str | None = None,
            idle: float = IDLE, meta: dict[str, Any] | None = None) -> Record:
    return Record(dict(fields or {"a": "1"}), now, now + idle, now, user, 1, "inst-a",
                  dict(meta or {}))


def _update(key: str, loaded: Record, now: float, *, changes: dict[str, str] | None = None,
            removed: tuple[str, ...] = (), user: str | None = None, set_user: bool = False,
            ) -> Update:
    return Update(key, changes or {}, removed, user if set_user else loaded.user_id, set_user,
                  now, now + IDLE, loaded.fields, loaded.version, ABSOLUTE)


class StoreContract:
    """The contract every store keeps. Subclass it and provide a ``store`` fixture that
    yields an empty store."""

    @pytest.fixture(params=["sync", "async"])
    def run(self, request: pytest.FixtureRequest, store: Store) -> Iterator[Face]:
        face = Face(store, request.param)
        try:
            yield face
        finally:
            face.close()

    @pytest.fixture
    def now(self) -> float:
        return time.time()

    # --- reading and writing whole records -----------------------------------------------
    def test_an_unknown_key_loads_nothing(self, run: Face, now: float) -> None:
        assert run(Load(_key("missing"), now, IDLE, ABSOLUTE)) is None

    def test_a_created_record_loads_as_written(self, run: Face, now: float) -> None:
        fields = {"cart": '["apple","pear"]', "é": '"ünïcode ☃"', "esc": '"a\\ud800b"',
                  "big": '"' + "x" * 65_000 + '"'}
        assert run(Create(_key("one"), _record(fields, now=now, user="alice"), ABSOLUTE))
        loaded = run(Load(_key("one"), now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert loaded.fields == fields
        assert loaded.user_id == "alice"
        assert loaded.created_at == pytest.approx(now, abs=1e-3)
        assert loaded.expires_at == pytest.approx(now + IDLE, abs=1e-3)

    def test_create_if_absent_writes_once_and_says_so(self, run: Face, now: float) -> None:
        first = _record({"who": '"first"'}, now=now)
        second = _record({"who": '"second"'}, now=now)
        assert run(Create(_key("once"), first, ABSOLUTE, if_absent=True)) is True
        assert run(Create(_key("once"), second, ABSOLUTE, if_absent=True)) is False
        loaded = run(Load(_key("once"), now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert loaded.fields == {"who": '"first"'}

    def test_an_expired_record_never_passes_for_a_live_one(self, run: Face, now: float
                                                           ) -> None:
        """A store may drop an expired record or return it; the engine judges its expiry."""
        old = Record({"a": "1"}, now - 100, now - 10, now - 100, None, 1, None)
        run(Create(_key("old"), old, ABSOLUTE))
        loaded = run(Load(_key("old"), now, IDLE, ABSOLUTE))
        assert loaded is None or loaded.expires_at <= now

    # --- updates: deltas, atomic, never resurrecting ---------------------------------------
    def test_an_update_merges_its_delta(self, run: Face, now: float) -> None:
        key = _key("merge")
        run(Create(key, _record({"a": "1", "b": "2", "c": "3"}, now=now), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(key, loaded, now, changes={"a": "10", "d": "4"}, removed=("b",)))
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.fields == {"a": "10", "c": "3", "d": "4"}

    def test_concurrent_updates_of_other_keys_are_all_kept(self, run: Face, now: float
                                                           ) -> None:
        """Two requests loaded the same record and changed different keys: no lost update."""
        key = _key("lost-update")
        run(Create(key, _record({"base": "0"}, now=now), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(key, loaded, now, changes={"first": "1"}))
        assert run(_update(key, loaded, now, changes={"second": "2"}))  # from the old base
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.fields == {"base": "0", "first": "1", "second": "2"}

    def test_an_update_that_tells_a_version_tells_the_records_own(self, run: Face, now: float
                                                                   ) -> None:
        """An update answers True, or the record's new version (hybrid mode keeps its copy
        only when that is the next after its copy's): then ``Load`` reports the same one,
        and a write from an old base still counts every write in between."""
        key = _key("versions")
        run(Create(key, _record({"a": "1"}, now=now), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        first = run(_update(key, loaded, now, changes={"a": "2"}))
        assert first is True or type(first) is int, f"Update answered {first!r}"
        if first is True:
            return  # a store that keeps no version: hybrid copies are read again after writes
        second = run(_update(key, loaded, now, changes={"b": "3"}))  # from the old base
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert (first, second) == (loaded.version + 1, loaded.version + 2)
        assert after.version == second

    def test_updates_from_many_threads_all_land(self, store: Store, now: float) -> None:
        key = _key("threads")
        store.execute(Create(key, _record({"base": "0"}, now=now), ABSOLUTE))
        loaded = store.execute(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        errors: list[BaseException] = []

        def write(n: int) -> None:
            try:
                assert store.execute(_update(key, loaded, now, changes={f"k{n}": str(n)}))
            except BaseException as exc:  # reported below, with the thread's failure
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        after = store.execute(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.fields == {"base": "0", **{f"k{n}": str(n) for n in range(16)}}

    def test_an_update_never_creates_a_record(self, run: Face, now: float) -> None:
        ghost = _record(now=now)
        assert run(_update(_key("ghost"), ghost, now, changes={"a": "2"})) is False
        assert run(Load(_key("ghost"), now, IDLE, ABSOLUTE)) is None

    def test_an_update_never_resurrects_a_deleted_record(self, run: Face, now: float) -> None:
        key = _key("deleted")
        run(Create(key, _record(now=now), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        run(Delete(key))
        assert run(_update(key, loaded, now, changes={"late": "1"})) is False
        assert run(Load(key, now, IDLE, ABSOLUTE)) is None

    def test_an_update_never_revives_an_expired_record(self, run: Face, now: float) -> None:
        key = _key("expired")
        run(Create(key, _record(now=now), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        run(Touch(key, now, now - 10))  # its deadline moved into the past: it has expired
        time.sleep(0.01)  # a store with native TTLs drops it within a millisecond
        assert run(_update(key, loaded, now, changes={"late": "1"})) is False
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is None or after.expires_at <= now

    # --- expiry, deletion, users -----------------------------------------------------------
    def test_touch_slides_a_live_record_and_reports_a_gone_one(self, run: Face, now: float
                                                               ) -> None:
        key = _key("touch")
        run(Create(key, _record(now=now), ABSOLUTE))
        assert run(Touch(key, now + 60, now + 60 + IDLE)) is True
        loaded = run(Load(key, now + 60, IDLE, ABSOLUTE))
        assert loaded is not None
        assert loaded.expires_at >= now + 60 + IDLE - 1e-3
        assert run(Touch(_key("gone"), now, now + IDLE)) is False
        assert run(Load(_key("gone"), now, IDLE, ABSOLUTE)) is None

    def test_delete_is_final_and_idempotent(self, run: Face, now: float) -> None:
        key = _key("bye")
        run(Create(key, _record(now=now), ABSOLUTE))
        run(Delete(key))
        run(Delete(key))
        assert run(Load(key, now, IDLE, ABSOLUTE)) is None

    def test_delete_user_ends_every_session_of_that_user_only(self, run: Face, now: float
                                                              ) -> None:
        run(Create(_key("alice-1"), _record(now=now, user="alice"), ABSOLUTE))
        run(Create(_key("bob-1"), _record(now=now, user="bob"), ABSOLUTE))
        anonymous = _key("alice-2")
        run(Create(anonymous, _record(now=now), ABSOLUTE))
        loaded = run(Load(anonymous, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(anonymous, loaded, now, user="alice", set_user=True))  # login
        case_twin = _key("alice-3")  # user ids are compared exactly
        run(Create(case_twin, _record(now=now, user="Alice"), ABSOLUTE))
        assert run(DeleteUser("alice")) == 2
        for gone in ("alice-1", "alice-2"):
            assert run(Load(_key(gone), now, IDLE, ABSOLUTE)) is None
        assert run(Load(_key("bob-1"), now, IDLE, ABSOLUTE)) is not None
        assert run(Load(case_twin, now, IDLE, ABSOLUTE)) is not None
        assert run(DeleteUser("alice")) == 0

    def test_a_session_unbound_from_its_user_survives_its_log_out_everywhere(
        self, run: Face, now: float
    ) -> None:
        key = _key("unbound")
        run(Create(key, _record(now=now, user="carol"), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(key, loaded, now, user=None, set_user=True))  # logged out here
        run(DeleteUser("carol"))
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.user_id is None

    # --- facts about sessions (``Record.meta``) and a user's devices -----------------------
    def test_meta_round_trips_and_changes_only_when_an_update_says_so(
        self, run: Face, now: float
    ) -> None:
        key = _key("meta")
        meta = {"ub": now - 60.25, "au": now - 5.5, "xi": 600.0, "xa": 86400.0, "xp": False,
                "dn": "Firefox on Linux ☃ \"quoted\"", "zz-newer": [1, {"a": None}]}
        assert run(Create(key, _record(now=now, user="dora", meta=meta), ABSOLUTE))
        loaded = run(Load(key, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert loaded.meta == meta
        assert run(_update(key, loaded, now, changes={"a": "2"}))  # meta None: left alone
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.meta == meta
        assert after.fields == {"a": "2"}
        changed = {**meta, "au": now}
        assert run(dataclasses.replace(_update(key, after, now), meta=changed))
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.meta == changed
        assert run(dataclasses.replace(_update(key, after, now), meta={}))  # every fact gone
        after = run(Load(key, now, IDLE, ABSOLUTE))
        assert after is not None
        assert after.meta == {}
        plain = _key("no-meta")
        run(Create(plain, _record(now=now), ABSOLUTE))
        loaded = run(Load(plain, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert loaded.meta == {}

    def test_a_users_sessions_are_listed_with_their_facts(self, run: Face, now: float
                                                          ) -> None:
        first = _key("dev-alice-1")
        run(Create(first, _record({"cart": '["pear"]'}, now=now, user="alice",
                                  meta={"dn": "phone"}), ABSOLUTE))
        later = _key("dev-alice-2")  # bound by a later login
        run(Create(later, _record(now=now), ABSOLUTE))
        loaded = run(Load(later, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(later, loaded, now, user="alice", set_user=True))
        unbound = _key("dev-alice-3")  # logged out of since
        run(Create(unbound, _record(now=now, user="alice"), ABSOLUTE))
        loaded = run(Load(unbound, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(unbound, loaded, now, user=None, set_user=True))
        moved = _key("dev-alice-4")  # bound to someone else since
        run(Create(moved, _record(now=now, user="alice"), ABSOLUTE))
        loaded = run(Load(moved, now, IDLE, ABSOLUTE))
        assert loaded is not None
        assert run(_update(moved, loaded, now, user="bob", set_user=True))
        expired = _key("dev-alice-5")
        run(Create(expired, Record({"a": "1"}, now - 100, now - 10, now - 100, "alice", 1,
                                   None), ABSOLUTE))
        gone = _key("dev-alice-6")
        run(Create(gone, _record(now=now, user="alice"), ABSOLUTE))
        run(Delete(gone))
        run(Create(_key("dev-case-twin"), _record(now=now, user="Alice"), ABSOLUTE))
        found = run(ListUser("alice", now))
        listed = dict(found)
        assert len(listed) == len(found)  # each key once
        assert set(listed) == {first, later}
        assert listed[first].fields == {"cart": '["pear"]'}
        assert listed[first].meta == {"dn": "phone"}
        assert listed[first].user_id == "alice"
        assert listed[first].instance == "inst-a"
        assert listed[first].created_at == pytest.approx(now, abs=1e-3)
        assert listed[first].expires_at == pytest.approx(now + IDLE, abs=1e-3)
        assert [key for key, _ in run(ListUser("bob", now))] == [moved]
        assert run(ListUser("nobody", now)) == []
        run(DeleteUser("alice"))
        assert run(ListUser("alice", now)) == []

    # --- whole-store tools -----------------------------------------------------------------
    def test_records_are_listed_and_copied_without_overwriting(self, store: Store, now: float
                                                               ) -> None:
        if not store.capabilities.lists_records:
            pytest.skip(f"{type(store).__name__} does not list its records (lists_records)")
        store.execute(Create(_key("kept"), _record({"v": '"old"'}, now=now), ABSOLUTE))
        written = store.put_records([(_key("kept"), _record({"v": '"new"'}, now=now)),
                                     (_key("added"), _record({"v": '"added"'}, now=now))],
                                    ABSOLUTE)
        assert written == 1
        listed = {key: record.fields for batch in store.iter_records(batch=1)
                  for key, record in batch}
        assert listed[_key("kept")] == {"v": '"old"'}
        assert listed[_key("added")] == {"v": '"added"'}


__all__ = ["Face", "StoreContract"]
