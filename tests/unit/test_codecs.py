"""Session values as text: every value sessions keep comes back as itself, the text is valid
UTF-8 in every case, and the fast codec (orjson, the ``fast`` extra) and the standard library
agree on what is kept, refused and read back."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from sessionkit import codecs

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
    st.binary(max_size=10), st.uuids(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC))),
    TEXT.map(Markup),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (a tuple is not a list here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@settings(max_examples=400, deadline=None)
@given(value=VALUES)
def test_every_value_comes_back_as_itself_in_utf8_text(value: Any) -> None:
    text = codecs.encode_value("k", value)
    text.encode("utf-8")  # no lone surrogate ever reaches a store or a token
    assert same(codecs.decode_value(text), value)


@settings(max_examples=400, deadline=None)
@given(value=VALUES)
def test_the_fast_codec_and_json_read_each_others_texts(value: Any,
                                                        ) -> None:
    fast = codecs.encode_value("k", value)
    original, codecs._orjson = codecs._orjson, None
    try:
        plain = codecs.encode_value("k", value)
        assert same(codecs.decode_value(fast), value)
    finally:
        codecs._orjson = original
    assert same(codecs.decode_value(plain), value)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("value", [float("nan"), [1, float("inf")], {"x": object()}, {1, 2},
                                   1j])
def test_what_json_cannot_hold_is_refused_either_way(fast: bool, value: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if not fast:
        monkeypatch.setattr(codecs, "_orjson", None)
    with pytest.raises(TypeError, match=r"session\['k'\] holds a value sessions cannot keep"):
        codecs.encode_value("k", value)


def test_tags_are_flasks_and_a_users_look_alike_dict_is_escaped() -> None:
    value = {"when": datetime(2026, 1, 1, tzinfo=UTC), "id": uuid.UUID(int=1),
             "looks": {" t": [1]}}
    text = codecs.encode_value("k", value)
    assert '{" d":"2026-01-01T00:00:00+00:00"}' in text
    assert same(codecs.decode_value(text), value)
