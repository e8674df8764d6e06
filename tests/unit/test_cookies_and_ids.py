from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkit import SessionConfig, SessionTooLarge
from sessionkit.cookies import CookieSettings, CookieWriter, cookie_values
from sessionkit.ids import SessionIds
from tests.support import KEY, OLD_KEY


def writer_for(config: SessionConfig) -> CookieWriter:
    return CookieWriter(CookieSettings.from_config(config))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, []),
        ("", []),
        ("other=1", []),
        ("session=abc", ["abc"]),
        ("a=1; session=abc; b=2", ["abc"]),
        ("session=a; session=b", ["a", "b"]),
        ('session="quoted"', ["quoted"]),
        ("mysession=x; session_old=y", []),
        ("session", []),
        ("session=", [""]),
        ("  session =x", []),
        ("session=a,session=b", ["a,session=b"]),  # ";" separates cookies, never ","
        ("q=x,session=b; session=c", ["c"]),
    ],
)
def test_cookie_values(header: str | None, expected: list[str]) -> None:
    assert cookie_values(header, "session") == expected


def test_ids_are_256_bit_random_dotless_and_verified() -> None:
    ids = SessionIds([KEY.encode()])
    token, key = ids.new()
    assert len(token) == 64
    assert "." not in token
    assert ids.verify(token) == (key, 0)
    assert ids.new()[0] != token
    assert key != token  # the store never sees the id itself


def test_store_key_depends_on_the_secret() -> None:
    token, _ = SessionIds([KEY.encode()]).new()
    assert SessionIds([OLD_KEY.encode()]).verify(token) is None


def test_rotation_verifies_old_ids_and_names_their_generation() -> None:
    old_token, old_key = SessionIds([OLD_KEY.encode()]).new()
    rotated = SessionIds([KEY.encode(), OLD_KEY.encode()])
    assert rotated.verify(old_token) == (old_key, 1)
    new_token, _ = rotated.new()
    assert rotated.verify(new_token) is not None
    assert SessionIds([OLD_KEY.encode()]).verify(new_token) is None


def test_log_id_is_short_and_not_the_token() -> None:
    ids = SessionIds([KEY.encode()])
    token, _ = ids.new()
    assert len(ids.log_id(token)) == 16
    assert ids.log_id(token) not in token


def test_cookie_writer_refuses_oversized_cookies() -> None:
    writer = writer_for(SessionConfig(secret_key=KEY))
    with pytest.raises(SessionTooLarge, match="4096"):
        writer.set("x" * 5000, max_age=10, now=0, https=False)


def test_cookie_writer_forces_secure_for_prefixed_names() -> None:
    writer = writer_for(SessionConfig(secret_key=KEY, cookie_name="__Secure-s"))
    assert "; Secure" in writer.set("v", max_age=10, now=0, https=False)
    assert "; Secure" in writer.delete(https=False)


def test_cookie_secure_false_never_sends_secure() -> None:
    writer = writer_for(SessionConfig(secret_key=KEY, cookie_secure=False))
    assert "Secure" not in writer.set("v", max_age=10, now=0, https=True)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["session=", "session", *"=ab;, \t\"\n\x0b.", "é"]),
                max_size=30).map("".join))
def test_cookie_values_splits_exactly_like_a_regex_on_semicolons(header: str) -> None:
    """The parser splits with str methods for speed; it must agree with the plain reading:
    pieces end at ``;`` and nowhere else (a ``,`` belongs to the value, as in RFC 6265)."""
    expected = []
    for piece in re.split(r";", header):
        piece = piece.strip()
        if piece.startswith("session="):
            value = piece[len("session="):].strip()
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            expected.append(value)
    assert cookie_values(header, "session") == expected


_COOKIE = st.tuples(st.sampled_from(["session", "q", "sessionx", "a"]),
                    st.text(alphabet=st.sampled_from([*"ab09._-=,"]), max_size=12))


@settings(max_examples=1000, deadline=None)
@given(st.lists(_COOKIE, max_size=6), st.sampled_from([";", "; ", " ;  "]))
def test_cookie_values_reads_what_werkzeug_and_starlette_read(
    cookies: list[tuple[str, str]], separator: str
) -> None:
    """Whatever cookies a client sends (commas and ``=`` in values included), the values of
    ``session`` are the ones Werkzeug reads, and Starlette's (which keeps the last) is among
    them: the app and sessionkit never disagree on which cookie is the session."""
    from starlette.requests import cookie_parser
    from werkzeug.http import parse_cookie

    header = separator.join(f"{name}={value}" for name, value in cookies)
    found = cookie_values(header, "session")
    assert found == parse_cookie(header).getlist("session")
    assert found == [value for name, value in cookies if name == "session"]
    if found:
        assert cookie_parser(header)["session"] == found[-1]
