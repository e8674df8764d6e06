"""The session's facts (``sessionkit.meta``) through the engine's two faces, on the stores that
need no service (memory, and jwt:// with a memory revocation store): a session's own expiry,
fresh logins, descriptions and handles — kept by regenerate, dropped by invalidate, written
only when they change, refused with clear errors when wrong."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest

from sessionkit import ConfigError, Session, SessionEngine, StoreUnavailable
from sessionkit.session import UnavailableSession
from sessionkit.stores.base import Op, Update
from sessionkit.stores.memory import MemoryStore
from tests.support import KEY, OLD_KEY, FakeClock

MODES = {"memory": {"store": "memory://"},
         "jwt": {"store": "jwt://", "revocation_store": "memory://"}}


class Face:
    """One engine driven through its sync or its async face, like a browser: cookie kept."""

    def __init__(self, engine: SessionEngine, kind: str) -> None:
        self.engine = engine
        self.kind = kind
        self.cookie: str | None = None

    def load(self) -> Session:
        header = f"session={self.cookie}" if self.cookie else None
        if self.kind == "sync":
            return self.engine.load(header)
        return asyncio.run(self.engine.aload(header))

    def commit(self, session: Session) -> list[str]:
        if self.kind == "sync":
            cookies = self.engine.commit(session).set_cookies
        else:
            cookies = asyncio.run(self.engine.acommit(session)).set_cookies
        for cookie in cookies:
            value = cookie.split(";")[0].split("=", 1)[1]
            self.cookie = value or None if "Max-Age=0" not in cookie else None
        return cookies

    def request(self, view: Any) -> tuple[Session, list[str]]:
        session = self.load()
        view(session)
        return session, self.commit(session)


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(mode: str, clock: FakeClock, **settings: Any) -> SessionEngine:
    return SessionEngine(secret_key=KEY, clock=clock, instance_id="a",
                         **{**MODES[mode], **settings})


def log_in(session: Session, user: str = "ann") -> None:
    session.regenerate()
    session["user"] = user
    session.user_id = user
    session.mark_authenticated()


def test_regenerate_keeps_the_facts_and_invalidate_drops_them(mode: str, kind: str,
                                                              clock: FakeClock) -> None:
    face = Face(make(mode, clock), kind)

    def choose(session: Session) -> None:
        log_in(session)
        session.set_expiry(idle=timedelta(minutes=20), browser_session=True)
        session.description = "Laptop"

    face.request(choose)
    signed_in = clock.now
    clock.advance(60)
    session, cookies = face.request(lambda s: s.regenerate())
    assert cookies and "Max-Age" not in cookies[0] and "Expires" not in cookies[0]
    session = face.load()
    assert session.authenticated_at is not None
    assert session.authenticated_at.timestamp() == signed_in
    assert session.description == "Laptop"
    assert session.expires_at.timestamp() == pytest.approx(clock.now + 20 * 60, abs=1)
    clock.advance(21 * 60)  # the session's own idle limit, after regenerate too
    assert "user" not in face.load()

    face = Face(make(mode, clock), kind)
    face.request(choose)

    def logout_then_write(session: Session) -> None:
        session.invalidate()
        session["flash"] = "bye"

    face.request(logout_then_write)
    after = face.load()
    assert after["flash"] == "bye"
    assert after.authenticated_at is None and after.description is None
    assert not after.authenticated_within(3600)
    assert after.expires_at.timestamp() == pytest.approx(clock.now + 14 * 86400, abs=1)


def test_facts_are_written_only_when_they_change(clock: FakeClock) -> None:
    """The hot path stays cheap: a request that changes data but no fact sends no facts."""
    sent: list[Update] = []

    class Watching(MemoryStore):
        def execute(self, op: Op[Any]) -> Any:
            if isinstance(op, Update):
                sent.append(op)
            return super().execute(op)

    face = Face(SessionEngine(store=Watching(), secret_key=KEY, clock=clock), "sync")
    face.request(log_in)
    face.request(lambda s: s.update(cart=["apple"]))
    face.request(lambda s: setattr(s, "description", None))  # there was none: no change
    face.request(lambda s: s.set_expiry())  # nothing chosen before, nothing now
    assert [op.meta for op in sent] == [None]
    face.request(lambda s: setattr(s, "description", "Phone"))
    face.request(lambda s: s.mark_authenticated())  # the same instant: nothing changed
    clock.advance(5)
    face.request(lambda s: s.mark_authenticated())
    assert [op.meta is not None for op in sent] == [False, True, True]
    assert sent[-1].meta is not None and sent[-1].meta["dn"] == "Phone"


def test_a_shorter_expiry_moves_the_deadline_at_once(mode: str, clock: FakeClock) -> None:
    face = Face(make(mode, clock), "sync")
    face.request(log_in)
    clock.advance(3600)
    session, _ = face.request(lambda s: s.set_expiry(idle=600))
    assert session.expires_at.timestamp() == pytest.approx(clock.now + 600, abs=1)
    clock.advance(601)
    assert "user" not in face.load()
    face = Face(make(mode, clock), "sync")
    face.request(log_in)
    face.request(lambda s: s.set_expiry(idle=600))
    session, _ = face.request(lambda s: s.set_expiry())  # back to the configured 14 days
    assert session.expires_at.timestamp() == pytest.approx(clock.now + 14 * 86400, abs=1)


@pytest.mark.parametrize(("arguments", "error"), [
    ({"idle": -1}, ValueError), ({"idle": 0}, ValueError), ({"absolute": float("nan")}, ValueError),
    ({"idle": float("inf")}, ValueError), ({"idle": "1h"}, TypeError), ({"idle": True}, TypeError),
    ({"absolute": timedelta(seconds=-5)}, ValueError), ({"browser_session": 1}, TypeError),
])
def test_a_wrong_expiry_is_refused_at_the_call(arguments: dict[str, Any],
                                               error: type[Exception]) -> None:
    session = SessionEngine(secret_key=KEY).load(None)
    with pytest.raises(error):
        session.set_expiry(**arguments)
    duration = arguments.get("idle", arguments.get("absolute"))
    if duration is not None:  # the same rule for a fresh login's window
        with pytest.raises(error):
            session.authenticated_within(duration)
    assert session.modified is False


@pytest.mark.parametrize(("value", "error"), [
    (7, TypeError), ("x" * 201, TypeError), ("nul\x00", ValueError), ("\ud800", ValueError),
])
def test_a_wrong_description_is_refused(value: Any, error: type[Exception]) -> None:
    session = SessionEngine(secret_key=KEY).load(None)
    with pytest.raises(error):
        session.description = value
    session.description = "é" * 200  # the longest there is
    assert session.description == "é" * 200


def test_revoke_others_needs_a_user_and_a_mode_that_lists(clock: FakeClock) -> None:
    session = SessionEngine(secret_key=KEY).load(None)
    with pytest.raises(RuntimeError, match="user_id"):
        session.revoke_others()
    bare = SessionEngine(store="jwt://", secret_key=KEY).load(None)
    bare.user_id = "ann"
    with pytest.raises(ConfigError, match="revocation_store"):
        bare.revoke_others()
    with pytest.raises(ConfigError, match="revocation_store"):
        SessionEngine(store="jwt://", secret_key=KEY).store.user_sessions("ann")


def test_fresh_logins_follow_a_patched_wall_clock() -> None:
    """No ``clock`` configured: ``time.time`` is read at each call, so tests that patch it
    (freezegun, mock) move ``authenticated_within`` too."""
    engine = SessionEngine(secret_key=KEY)
    with mock.patch("time.time", return_value=2_000_000_000.0):
        session = engine.load(None)
        log_in(session)
        assert session.authenticated_within(0.5)
        assert session.authenticated_at is not None
        assert session.authenticated_at.timestamp() == 2_000_000_000.0
    with mock.patch("time.time", return_value=2_000_000_301.0):
        assert session.authenticated_within(timedelta(minutes=5, seconds=2))
        assert not session.authenticated_within(300)


def test_listing_and_revoking_through_both_faces(mode: str, clock: FakeClock) -> None:
    engine = make(mode, clock)
    phones = [Face(engine, "sync") for _ in range(3)]
    for phone in phones:
        phone.request(log_in)
    here = phones[0].load().handle
    listed = asyncio.run(engine.store.auser_sessions("ann"))
    assert len(listed) == 3 and here in {s.handle for s in listed}
    others = [s.handle for s in listed if s.handle != here]
    assert asyncio.run(engine.store.arevoke("ann", others[0])) is True
    assert engine.store.revoke("ann", others[1]) is True
    assert engine.store.revoke("ann", others[1]) is False
    assert [s.handle for s in engine.store.user_sessions("ann")] == [here]
    assert engine.store.user_sessions("nobody") == []
    with pytest.raises(TypeError):
        engine.store.user_sessions("")
    with pytest.raises(TypeError):
        engine.store.revoke("ann", None)  # type: ignore[arg-type]


def test_a_handle_listed_before_a_key_rotation_still_works(clock: FakeClock) -> None:
    engine = SessionEngine(secret_key=OLD_KEY, clock=clock)
    face = Face(engine, "sync")
    face.request(log_in)
    [listed] = engine.store.user_sessions("ann")
    engine.rekey([KEY.encode(), OLD_KEY.encode()])
    assert engine.store.revoke("ann", listed.handle) is True


def test_a_bare_store_cannot_list_without_its_engine() -> None:
    with pytest.raises(ConfigError, match="SessionEngine"):
        MemoryStore().user_sessions("ann")


def test_an_unavailable_session_refuses_the_new_methods_too() -> None:
    session = UnavailableSession(StoreUnavailable("redis://", ConnectionError("down")))
    for call in (lambda: session.set_expiry(idle=5), session.mark_authenticated,
                 lambda: session.authenticated_within(5), session.revoke_others,
                 lambda: session.authenticated_at, lambda: session.description,
                 lambda: session.handle, lambda: setattr(session, "description", "x")):
        with pytest.raises(StoreUnavailable):
            call()


def test_the_list_shows_each_sessions_own_deadline(mode: str, clock: FakeClock) -> None:
    """A read slides memory's stored deadline by the configured idle timeout; the list (like
    the engine) still ends the session at its own."""
    engine = make(mode, clock)
    face = Face(engine, "sync")
    face.request(log_in)
    face.request(lambda s: s.set_expiry(idle=600))
    clock.advance(60)
    face.request(lambda s: s.get("user"))  # a read
    [listed] = engine.store.user_sessions("ann")
    assert listed.expires_at.timestamp() == pytest.approx(listed.last_seen.timestamp() + 600)
    assert listed.expires_at.timestamp() <= clock.now + 600
