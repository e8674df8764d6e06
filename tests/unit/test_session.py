"""The Session mapping: JSON values only, change detection including nested edits."""

from __future__ import annotations

import time

import pytest

from sessionkit import Session, SessionEngine
from sessionkit.session import state_of
from sessionkit.stores.base import Create, Load
from tests.support import KEY


def loaded(data: dict[str, object]) -> tuple[SessionEngine, Session]:
    """A session as a later request sees it: saved once, then loaded from the store."""
    engine = SessionEngine(secret_key=KEY, instance_id="a")
    first = engine.load(None)
    first.update(data)
    [cookie] = engine.commit(first).set_cookies
    return engine, engine.load(cookie.split(";")[0])


def test_behaves_like_a_dict() -> None:
    _, session = loaded({"a": 1, "b": [1, 2], "c": {"x": None}})
    assert dict(session) == {"a": 1, "b": [1, 2], "c": {"x": None}}
    assert len(session) == 3
    assert "a" in session and "zz" not in session
    assert sorted(session) == ["a", "b", "c"]
    assert session.get("zz", 5) == 5
    assert session.pop("a") == 1
    assert "a" not in session
    session["a"] = 2
    assert session["a"] == 2
    del session["b"]
    assert sorted(session.keys()) == ["a", "c"]
    with pytest.raises(KeyError):
        del session["b"]
    session.clear()
    assert len(session) == 0
    assert dict(session) == {}
    session["z"] = True
    assert session.to_dict() == {"z": True}


def test_unloaded_session_is_new_and_unmodified() -> None:
    _, session = loaded({"a": 1})
    assert session.is_new is False
    assert session.modified is False
    assert session.accessed is False
    assert session.id is not None


def test_reading_does_not_modify_but_marks_accessed() -> None:
    _, session = loaded({"cart": ["x"]})
    assert session["cart"] == ["x"]
    assert session.accessed is True
    assert session.modified is False


def test_nested_in_place_change_is_detected() -> None:
    _, session = loaded({"cart": ["x"], "profile": {"tags": []}})
    session["cart"].append("y")
    assert session.modified is True
    _, other = loaded({"profile": {"tags": []}})
    other["profile"]["tags"].append("vip")
    assert state_of(other).delta(other) == ({"profile": '{"tags":["vip"]}'}, ())


def test_setting_an_equal_value_is_not_a_change() -> None:
    _, session = loaded({"a": [1, 2]})
    session["a"] = [1, 2]
    assert session.modified is False


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, 1j, float("nan"), {"nested": object()}, [1, {"x": frozenset()}]]
)
def test_non_json_value_raises_type_error_naming_the_key(value: object) -> None:
    session = Session()
    with pytest.raises(TypeError, match=r"session\['basket'\].*cannot keep"):
        session["basket"] = value
    assert "basket" not in session


def test_non_str_key_is_refused() -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        Session()[1] = "x"  # type: ignore[index]


def test_nested_non_json_added_in_place_fails_at_commit_naming_the_key() -> None:
    engine, session = loaded({"cart": []})
    session["cart"].append(object())
    with pytest.raises(TypeError, match=r"session\['cart'\]"):
        engine.commit(session)


def test_user_id_validation() -> None:
    session = Session()
    session.user_id = "alice"
    assert session.user_id == "alice"
    for bad in ("", "x" * 257, 5):
        with pytest.raises(TypeError):
            session.user_id = bad  # type: ignore[assignment]


def test_modified_setter_forces_a_save_like_flask() -> None:
    engine, session = loaded({"a": 1})
    session.modified = True
    assert session.modified is True
    key = state_of(session).key
    assert key is not None
    before = engine.store.execute(Load(key, time.time(), 1e6, 1e6))
    engine.commit(session)
    after = engine.store.execute(Load(key, time.time(), 1e6, 1e6))
    assert before is not None and after is not None
    assert after.version == before.version + 1


def test_repr_shows_keys_not_values_or_id() -> None:
    _, session = loaded({"secret": "hunter2"})
    text = repr(session)
    assert "secret" in text
    assert "hunter2" not in text
    assert session.id is not None
    assert session.id not in text


def test_timestamps() -> None:
    _, session = loaded({"a": 1})
    assert session.created_at <= session.last_accessed <= session.expires_at
    assert (session.expires_at - session.last_accessed).days == 14


def test_corrupt_stored_value_reads_as_absent_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, session = loaded({"a": 1, "b": 2})
    key = state_of(session).key
    assert key is not None and session.id is not None
    record = engine.store.execute(Load(key, time.time(), 1e6, 1e6))
    assert record is not None
    record.fields = {**record.fields, "a": "\x80\x04\x95pickle"}
    engine.store.execute(Create(key, record, 3600.0))
    again = engine.load(f"session={session.id}.a")
    assert "a" not in again  # present in the record, but never decoded as anything but JSON
    assert again["b"] == 2
    assert "not valid JSON" in caplog.text
    again["c"] = 3  # a later write keeps the unreadable text as it is, for a human to look at
    engine.commit(again)
    stored = engine.store.execute(Load(key, time.time(), 1e6, 1e6))
    assert stored is not None and stored.fields["a"] == "\x80\x04\x95pickle"
