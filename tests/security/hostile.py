"""Hostile input for the fuzz suite: hypothesis strategies for cookie headers, cookie values,
tokens and stored records, and the settings every fuzz target runs with.

``SESSIONKIT_FUZZ_EXAMPLES`` sets the examples per target (10,000 by default, as in CI);
``SESSIONKIT_FUZZ_EXAMPLES=100000`` is the long run. Examples are derandomized, so a run is
reproducible; ``SESSIONKIT_FUZZ_SEED=<n>`` explores a different (still reproducible) part of
the input space.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SESSIONKIT_FUZZ_EXAMPLES", "10000"))
SEED = os.environ.get("SESSIONKIT_FUZZ_SEED")
#: The most CPU time one input may take through any target. Parsing is linear and inputs are
#: at most ~64 KB, so real costs are a few milliseconds; a second means a blow-up (quadratic
#: parsing, catastrophic regex backtracking). CPU time of this thread, not wall time: a busy
#: machine (CI runners, shared hosts) must not fail the check.
MAX_SECONDS_PER_INPUT = 1.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # ``bounded`` asserts CPU time instead: wall-clock deadlines flake under load
    derandomize=SEED is None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def seeded(test: Any) -> Any:
    """Apply ``SESSIONKIT_FUZZ_SEED`` when given (hypothesis' ``seed``)."""
    if SEED is None:
        return test
    from hypothesis import seed

    return seed(int(SEED))(test)


class bounded:  # a lower-case name: it reads as a clause, ``with bounded():``
    """Asserts that the block used at most ``MAX_SECONDS_PER_INPUT`` of CPU time. The garbage
    collector is paused meanwhile: a full collection of the heap a long run builds up (once
    1.7 s after 100,000 examples) is not the input's doing."""

    def __enter__(self) -> None:
        gc.disable()
        self.started = time.thread_time()

    def __exit__(self, kind: object, *rest: object) -> None:
        elapsed = time.thread_time() - self.started
        gc.enable()
        if kind is None:
            assert elapsed < MAX_SECONDS_PER_INPUT, f"one input took {elapsed:.3f}s of CPU"


# --- characters and pieces an attacker likes ----------------------------------------------------
# Hypothesis costs most per *draw*, so hostile text is rendered from one drawn byte string:
# each byte picks a piece (a separator, a control character, a lone surrogate, a genuine
# token or a fragment of one, any code point). Thousands of inputs a second, every one weird.

#: Every code point, lone surrogates included (not valid UTF-8: they must not crash encoders).
ANY_CHAR = st.characters(codec=None, exclude_categories=())
NASTY = ["", ";", ",", "=", '"', "\x00", "\r", "\n", "\r\n", "\t", " ", ".", "..", "\ud800",
         "\udfff", "\uffff", "\U0010ffff", "%00", "\\", "/", "+", "==", "__Host-", "ñ", "\x7f",
         "\x80", "\xff", "session=", "; session=", "session", "=.", '="', "-", "_"]
NAMES = ["session", "Session", "__Host-session", "__Secure-session", "session ", " session",
         "sessionx", "x", "srv", ""]


def render(blob: bytes, genuine: tuple[str, ...] = ()) -> str:
    """Hostile text from bytes: below 0x30 a nasty piece (or a genuine token, whole or cut),
    up to 0x7f that ASCII character, 0x80-0xbf with the next byte any code point (lone
    surrogates included), above that the latin-1 character."""
    out: list[str] = []
    index, size = 0, len(blob)
    while index < size:
        byte = blob[index]
        if byte < 0x30:
            if genuine and byte < 6:
                token = genuine[byte % len(genuine)]
                out.append(token if byte < 3 else token[: byte * 11])
            else:
                out.append(NASTY[byte % len(NASTY)])
        elif byte < 0x80:
            out.append(chr(byte))
        elif byte < 0xC0 and index + 1 < size:
            index += 1
            out.append(chr((((byte & 0x3F) << 8) | blob[index]) * 277 % 0x110000))
        else:
            out.append(chr(byte))
        index += 1
    return "".join(out)


def hostile_text(genuine: list[str] | tuple[str, ...] = (), max_size: int = 160
                 ) -> st.SearchStrategy[str]:
    pieces = tuple(genuine)
    return st.binary(max_size=max_size).map(lambda blob: render(blob, pieces))


TEXT = hostile_text()


@st.composite
def _mutated(draw: st.DrawFn, genuine: list[str]) -> str:
    """A genuine value cut, extended, quoted or with a character changed."""
    value = draw(st.sampled_from(genuine))
    index = draw(st.integers(0, max(0, len(value) - 1)))
    how = draw(st.sampled_from(["cut", "flip", "insert", "append", "route", "quote"]))
    piece = render(draw(st.binary(min_size=1, max_size=3)))
    if how == "cut":
        return value[:index]
    if how == "flip":
        return value[:index] + piece + value[index + 1:]
    if how == "insert":
        return value[:index] + piece + value[index:]
    if how == "append":
        return value + piece
    if how == "route":
        return value.rpartition(".")[0] + "." + piece
    return '"' + value + '"'


def cookie_value(genuine: list[str]) -> st.SearchStrategy[str]:
    """A cookie value: garbage, a genuine one, or a genuine one mutated."""
    if not genuine:
        return TEXT
    return st.one_of(TEXT, _mutated(genuine), st.sampled_from(genuine))


def big_headers(genuine: list[str]) -> list[str]:
    """The heavy cases every target sees too: 64 KB, 1000 cookies, several ``session=``."""
    token = genuine[0] if genuine else "x"
    return [
        "session=" + "A" * 65536,
        "x=" + "y" * 65536 + "; session=" + token,
        "; ".join(f"c{i}=v{i}" for i in range(1000)) + "; session=" + token,
        "; ".join(["session=" + "B" * 64 + ".a"] * 1000),
        f"session=garbage; session={token}",
        f"q=x,session={token}; session=garbage",  # a comma inside a value starts no cookie
        ",".join(f"session={token}" for _ in range(1000)),
        f"session={token}; session={token}",
        ";" * 65536,
        "session=" + "\x00" * 4096,
        "session=" + "\ud800" * 4096,
        ("session=" + token + "\r\n") * 500,
    ]


def cookie_header(genuine: list[str]) -> st.SearchStrategy[str]:
    """A whole ``Cookie`` header: hostile text seeded with genuine tokens, a genuine value
    mutated, or one of the heavy cases."""
    return st.one_of(
        hostile_text(genuine, 400),
        _mutated(genuine).map(lambda value: "session=" + value) if genuine else TEXT,
        st.sampled_from(big_headers(genuine)),
    )


def raw_header_lists(genuine: list[str]) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    """ASGI ``headers``: any bytes, several ``cookie`` headers, and the encoded text cases."""
    as_bytes = cookie_header(genuine).map(lambda text: text.encode("utf-8", "surrogatepass"))
    value = st.one_of(st.binary(max_size=200), as_bytes)
    name = st.sampled_from([b"cookie", b"cookie", b"cookie", b"Cookie", b"host", b""])
    return st.lists(st.tuples(name, value), max_size=3)


# --- store URLs with secrets --------------------------------------------------------------------
#: Parameter names that hold secrets, as drivers spell them (and as someone might).
SECRET_PARAMS = ["password", "sentinel_password", "sslpassword", "token", "api_key", "apikey",
                 "secret", "client_secret", "auth_token", "Password", "PASSWORD", "pass%77ord",
                 "access_key", "pwd", "credentials"]
PLAIN_PARAMS = ["key_prefix", "table", "socket_timeout", "db", "ssl", "create_table",
                "connect_timeout", "max_sessions", "sslmode", "charset"]
URL_SCHEMES = ["redis", "rediss", "redis+sentinel", "redis+cluster", "unix", "postgresql",
               "postgresql+psycopg", "mysql+pymysql", "mariadb", "sqlite", "memory", "jwt"]
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: What a password may hold when written without percent-encoding: anything printable but
#: "@" in the userinfo, anything printable but "&" and "#" in a query value (those two cut a
#: value for every parser; whitespace and quotes end a URL quoted in some text).
_RAW_USERINFO = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "@\"'`<>")
_RAW_QUERY = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "&#\"'`<>")


def store_url(blob: bytes) -> tuple[str, list[str], list[str]]:
    """``(url, secrets, shown)`` from bytes (one draw, as ``render``): a store URL holding
    secrets (a userinfo password and/or secret-looking parameters, percent-encoded or raw) and
    the parts that must stay readable (the host, the plain parameters' values)."""
    from urllib.parse import quote

    data = iter(blob)

    def byte() -> int:
        return next(data, 0)

    def pick(options: list[str] | str) -> str:
        return options[byte() % len(options)]

    def text(alphabet: str, low: int, high: int) -> str:
        return "".join(pick(alphabet) for _ in range(low + byte() % (high - low + 1)))

    def secret(raw_alphabet: str) -> tuple[str, str]:
        """(the secret, as written in the URL). Unencoded, it never starts with a digit:
        ``:123?x=y@`` reads as a port and a query for every parser."""
        core = "Zq" + text(_ALNUM, 8, 16)
        cut = 1 + byte() % len(core)
        value = core[:cut] + text(raw_alphabet, 0, 6) + core[cut:]
        return value, quote(value, safe="") if byte() % 2 else value

    secrets: list[str] = []
    host = "h" + text("0123456789", 3, 6) + ".internal"
    shown = [host]
    userinfo = ""
    if byte() % 2:
        user = pick(["", "app", "default", "u_1"])
        value, written = secret(_RAW_USERINFO)
        secrets.append(value)
        userinfo = f"{user}:{written}@"
    port = pick(["", ":6379", ":5432", ",h2:26379"])
    path = pick(["", "/0", "/mymaster/0", "/sessions", "/"])
    params: list[str] = []
    for _ in range(byte() % 5):
        if byte() % 2:
            value, written = secret(_RAW_QUERY)
            secrets.append(value)
            params.append(f"{pick(SECRET_PARAMS)}={written}")
        else:
            plain = "v" + text("0123456789", 4, 8)
            shown.append(plain)
            params.append(f"{pick(PLAIN_PARAMS)}={plain}")
    query = ("?" + "&".join(params)) if params else ""
    return f"{pick(URL_SCHEMES)}://{userinfo}{host}{port}{path}{query}", secrets, shown


URLS_WITH_SECRETS = st.binary(max_size=200).map(store_url)
