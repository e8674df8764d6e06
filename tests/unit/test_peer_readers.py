"""The readers of peer libraries' stored sessions: MessagePack as msgspec writes it, pickles
read as data without being unpickled, and the peers' cookies."""

from __future__ import annotations

import datetime
import os
import pickle
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from sessionkit.peers import flask_session, starsessions
from sessionkit.peers.msgpack_reader import MAX_DEPTH, MsgpackRefused, read_msgpack
from sessionkit.peers.pickle_reader import MAX_BYTES, Opaque, PickleRefused, read_pickle
from sessionkit.peers.records import RecordRefused

EXAMPLES = settings(max_examples=300, deadline=None)

# --- MessagePack ---------------------------------------------------------------------------
aware = st.datetimes(min_value=datetime.datetime(1, 1, 2),
                     max_value=datetime.datetime(9999, 12, 30), timezones=st.just(datetime.UTC))
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False) | st.text() | st.binary() | aware)
msgpack_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-(2**63), 2**64 - 1), inner, max_size=5),
    max_leaves=30)


@EXAMPLES
@given(msgpack_values)
def test_msgpack_reads_what_msgspec_writes_as_msgspec_reads_it(value: Any) -> None:
    packed = msgspec.msgpack.encode(value)
    assert read_msgpack(packed) == msgspec.msgpack.decode(packed)


@EXAMPLES
@given(st.binary(max_size=64))
def test_msgpack_never_fails_otherwise_than_refusing(data: bytes) -> None:
    refused = object()
    try:
        expected = msgspec.msgpack.decode(data)
    except (msgspec.DecodeError, ValueError):
        expected = refused
    try:
        found = read_msgpack(data)
    except MsgpackRefused:
        return  # stricter than msgspec is allowed (other extensions, for one)
    assert expected is not refused and found == expected


@pytest.mark.parametrize(("data", "why"), [
    (pickle.dumps({"user": "ann"}), "bytes after the value"),  # 0x80 is an empty map
    (b"\x81\xa4user", "truncated"),
    (b"\x81\xa1a\xc1", "invalid type byte"),
    (b"\xd4\x05\x00", "extension type 5"),
    (b"\xa2\xff\xfe", "not UTF-8"),
    (b"\xa3\xed\xa0\x80", "not UTF-8"),  # a lone surrogate
    (b"\x81\x81\xa1a\x01\x01", "a map used as a map key"),
    (b"\xdd\xff\xff\xff\xff", "truncated"),  # a length beyond the input allocates nothing
    (b"\xd7\xff" + ((10**9) << 34).to_bytes(8, "big"), "nanoseconds out of range"),
    (b"\xc7\x0c\xff" + bytes(4) + (2**62).to_bytes(8, "big"), "out of datetime's range"),
    (b"\x91" * (MAX_DEPTH + 2) + b"\x01", "nested deeper"),
])
def test_msgpack_refuses(data: bytes, why: str) -> None:
    with pytest.raises(MsgpackRefused, match=why):
        read_msgpack(data)


def test_msgpack_timestamps_as_msgspec_has_them() -> None:
    for nanoseconds in (0, 499, 500, 1500, 999_999_999):
        packed = b"\xd7\xff" + ((nanoseconds << 34) | 5).to_bytes(8, "big")
        assert read_msgpack(packed) == msgspec.msgpack.decode(packed)
    packed = b"\xc7\x0c\xff" + (1500).to_bytes(4, "big") + (-5).to_bytes(8, "big", signed=True)
    assert read_msgpack(packed) == msgspec.msgpack.decode(packed)


# --- Flask-Session's Redis/SQL records -----------------------------------------------------
def test_flask_session_records_in_either_format() -> None:
    session = {"_permanent": True, "user": "ann", "cart": ["a", "b"]}
    assert flask_session.decode_serialized(msgspec.msgpack.encode(session)) == session
    assert flask_session.decode_serialized(msgspec.json.encode(session)) == session
    for refused in (pickle.dumps(session), b"garbage", b"[1, 2]", b"\x93\x01\x02\x03", b""):
        with pytest.raises(RecordRefused):
            flask_session.decode_serialized(refused)


# --- pickles -------------------------------------------------------------------------------
offsets = st.integers(-23 * 60, 23 * 60).map(
    lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
tagged = (st.datetimes(timezones=st.none() | st.just(datetime.UTC) | offsets) | st.dates()
          | st.times(timezones=st.none() | offsets) | st.timedeltas() | st.uuids()
          | st.text(max_size=20).map(Markup))
pickle_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                  | st.text(max_size=20) | st.binary(max_size=20) | tagged)
pickle_values = st.recursive(
    pickle_scalars, lambda inner: st.lists(inner, max_size=5)
    | st.lists(inner, max_size=4).map(tuple)
    | st.frozensets(st.integers(), max_size=4) | st.sets(st.text(max_size=4), max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=10), pickle_values, max_size=6), st.sampled_from([3, 4, 5]))
def test_pickled_data_is_read_as_pickle_would_load_it(session: dict[str, Any], protocol: int
                                                     ) -> None:
    data = pickle.dumps(session, protocol)
    found = read_pickle(data)
    assert found == session
    assert _types(found) == _types(session)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value), [_types(v) for v in value]
    return type(value)


def test_shared_and_memoized_values() -> None:
    cart = ["a", "b"]
    data = pickle.dumps({"cart": cart, "again": cart, "key": "cart"}, 5)
    found = read_pickle(data)
    assert found == {"cart": ["a", "b"], "again": ["a", "b"], "key": "cart"}
    assert found["cart"] is found["again"]


class _Marker:
    """Pickles as a call that would create ``path`` if the pickle were loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.path}",))


class _Point:
    def __init__(self) -> None:
        self.x = 1


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was asked to load data")

    for name in ("loads", "load", "Unpickler", "_loads", "_load", "_Unpickler"):
        if hasattr(pickle, name):
            monkeypatch.setattr(pickle, name, refuse)


@pytest.mark.usefixtures("no_unpickling")
def test_code_in_a_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = pickle.dumps(_Marker(marker), 5)
    assert read_pickle(evil) == Opaque(os.system.__module__, "system")  # named, never called
    nested = pickle.dumps({"user": "ann", "x": _Marker(marker), "p": _Point()}, 5)
    found = read_pickle(nested)
    assert found["user"] == "ann"
    assert found["x"] == Opaque(os.system.__module__, "system")
    assert found["p"] == Opaque(__name__, "_Point")
    assert not marker.exists()
    with pytest.raises(RecordRefused):
        flask_session.decode_pickled(evil)
    assert not marker.exists()


@pytest.mark.usefixtures("no_unpickling")
@pytest.mark.parametrize(("data", "why"), [
    (b"\x80\x05P0\n.", "PERSID"),
    (b"\x80\x05K\x01Q.", "BINPERSID"),
    (b"\x80\x05\x82\x01.", "EXT1"),
    (b"\x80\x05}\x94(\x8c\x01a\x94K\x01u", "STOP"),
    (b"\x80\x05K\x01.junk", "bytes after the pickle"),
    (b"\x80\x05K\x01K\x02.", "STOP with a stack"),
    (b"\x80\x05\x8c\x04uuid\x8c\x04UUID\x93)\x81.", "UUID without its state"),
    (b"\x80\x05}K\x01b.", "BUILD target"),
    (b"\x80\x05]K\x01K\x02s.", "SETITEMS"),
    (b"\x80\x05K\x01K\x02a.", "APPEND to a non-list"),
    (b"\x80\x05h\x07.", "malformed"),
    (b"\x80\x05\x8c\x08datetime\x8c\x08datetime\x93\x8c\x01x\x85R.", "datetime state"),
    (b"\x80\x05\x8c\x02\xed\xa0.", "malformed"),
    (b"\x80\x05K", "malformed"),
    (b"\x80\x05S'x'\n.", "STRING"),
])
def test_pickle_refusals(data: bytes, why: str) -> None:
    with pytest.raises(PickleRefused, match=why):
        read_pickle(data)


def test_oversized_pickles_are_refused_unread() -> None:
    with pytest.raises(PickleRefused, match="at most"):
        read_pickle(b"\x80\x05" + b"N" * MAX_BYTES + b".")


def test_pickles_that_unfold_into_too_much_are_refused() -> None:
    nested: list[Any] = []
    for _ in range(40):  # 2**40 values written out, in a few hundred bytes
        nested = [nested, nested]
    data = pickle.dumps({"user": "ann", "bomb": nested}, 5)
    assert len(data) < 1000
    with pytest.raises(PickleRefused, match="unfolds into more than"):
        read_pickle(data)
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(PickleRefused, match="into itself"):
        read_pickle(pickle.dumps({"loop": looped}, 5))


def test_a_pickle_of_something_else_than_a_dict_is_no_session() -> None:
    with pytest.raises(RecordRefused, match="something else"):
        flask_session.decode_pickled(pickle.dumps(["user", "ann"], 5))


# --- cookies -------------------------------------------------------------------------------
def test_flask_session_cookies() -> None:
    from itsdangerous import Signer

    sid = "4rI_knAKqROEshPOC7zS2uMgckK1LRW_LNnVbg7-1Jg"
    plain = flask_session.cookie_reader(False, [])
    assert plain(sid) == sid
    assert plain(sid + ".sig") is None
    assert plain("") is None
    signed_value = Signer("old-secret", salt="flask-session", key_derivation="hmac").sign(
        sid).decode()
    signed = flask_session.cookie_reader(True, ["rotated-secret", "old-secret"])
    assert signed(signed_value) == sid
    assert signed(sid) is None
    tampered = signed_value[:5] + ("A" if signed_value[5] != "A" else "B") + signed_value[6:]
    assert signed(tampered) is None
    assert flask_session.cookie_reader(True, ["another"])(signed_value) is None


def test_starsessions_cookies() -> None:
    read = starsessions.cookie_reader()
    assert read("0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef"
    for value in ("''", "0123456789ABCDEF0123456789ABCDEF", "0123", "x" * 32, ""):
        assert read(value) is None


def test_starsessions_created_time() -> None:
    data = {"__metadata__": {"created": 1_700_000_000.5, "lifetime": 60}}
    assert starsessions.created_at(data) == 1_700_000_000.5
    for bad in ({}, {"__metadata__": "x"}, {"__metadata__": {"created": True}},
                {"__metadata__": {"created": "1"}}):
        assert starsessions.created_at(bad) is None
