"""Fuzzing: every parser of attacker-controlled input, and the middlewares of all three
adapters, fed hostile cookies (64 KB headers, 1000 cookies, duplicate ``session=``, NUL, lone
surrogates, CR/LF, ``;`` in values) — never an exception, never a 500, never someone else's
session, never a record created, and each input within ``MAX_SECONDS_PER_INPUT``.

Examples per target: ``SESSIONKIT_FUZZ_EXAMPLES`` (10,000 by default). The long run::

    SESSIONKIT_FUZZ_EXAMPLES=100000 python -m pytest tests/security/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkit import ConfigError, SessionConfig, SessionEngine, StoreUnavailable, workers
from sessionkit.codecs import decode_value
from sessionkit.cookies import cookie_values
from sessionkit.ids import SessionIds
from sessionkit.meta import checked as checked_meta
from sessionkit.redact import redact_url, scrub, url_secrets
from sessionkit.stores.memory import MemoryStore
from sessionkit.stores.redis.store import _parse as parse_redis_record
from sessionkit.stores.sql import SQLStore, decode_fields
from tests.apps import make
from tests.security.hostile import (
    ANY_CHAR,
    EXAMPLES,
    FUZZ,
    NAMES,
    TEXT,
    URLS_WITH_SECRETS,
    bounded,
    cookie_header,
    cookie_value,
    raw_header_lists,
    render,
    seeded,
)
from tests.support import INSTANCE, KEY, FakeClock

DATA = {"user": "alice"}


def genuine_engine(store: str) -> tuple[SessionEngine, str]:
    """An engine on ``store`` holding one session, and that session's cookie value."""
    engine = SessionEngine(secret_key=KEY, store=store, instance_id=INSTANCE, clock=FakeClock())
    session = engine.load(None)
    session.update(DATA)
    [cookie] = engine.commit(session).set_cookies
    return engine, cookie.split(";")[0].split("=", 1)[1]


SERVER_ENGINE, SERVER_COOKIE = genuine_engine("memory://")
JWT_ENGINE, JWT_COOKIE = genuine_engine("jwt://")
GENUINE = [SERVER_COOKIE, JWT_COOKIE]


# --- parsers --------------------------------------------------------------------------------
@seeded
@FUZZ
@given(header=st.one_of(st.none(), cookie_header(GENUINE)),
       name=st.one_of(st.sampled_from(NAMES), TEXT))
def test_cookie_parser(header: str | None, name: str) -> None:
    with bounded():
        values = cookie_values(header, name)
    assert isinstance(values, list)
    for value in values:
        assert isinstance(value, str) and ";" not in value
        assert header is not None and value in header


@seeded
@FUZZ
@given(prefix=TEXT.map(lambda text: text.replace(";", "")),
       smuggled=cookie_value(GENUINE), victim=st.sampled_from(GENUINE))
def test_a_comma_never_starts_a_cookie(prefix: str, smuggled: str, victim: str) -> None:
    """Whatever one cookie's value holds before a ``;`` (commas, quotes, ``session=`` and a
    genuine token of someone else), the session cookie is the one after the ``;``."""
    smuggled = smuggled.replace(";", "")
    header = f"q={prefix},session={smuggled}; session={victim}"
    with bounded():
        values = cookie_values(header, "session")
    assert values == [victim]


@seeded
@FUZZ
@given(case=URLS_WITH_SECRETS)
def test_url_redaction(case: tuple[str, list[str], list[str]]) -> None:
    """Random store URLs with secrets (userinfo passwords, ``?password=``-like parameters,
    percent-encoded or not): no secret survives redaction, wherever the URL is shown, and the
    host and the plain parameters stay readable."""
    from urllib.parse import quote

    url, secrets, kept = case
    with bounded():
        shown = redact_url(url)
        again = redact_url(shown)
        hidden = url_secrets(url)
        try:
            config = repr(SessionConfig(store=url, drain_to=url, secret_key=KEY))
        except ConfigError as exc:  # a URL malformed by its unencoded secret: refused, shown
            config = str(exc)
        error = str(StoreUnavailable(url, OSError(f"cannot reach {url} now"), hide=hidden))
        quoted = scrub(f"failed: '{url}', giving up")
    assert again == shown
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            for text in (shown, config, error, quoted):
                assert form not in text, (url, text)
    for part in kept:
        assert part in shown, (url, shown)
    assert url.split("://", 1)[0] + "://" in shown


IDS = SessionIds([KEY.encode()])
ISSUED = [IDS.new()[0] for _ in range(4)]


@seeded
@FUZZ
@given(token=st.one_of(cookie_value(ISSUED), st.text(ANY_CHAR, min_size=64, max_size=64),
                       st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                               min_size=64, max_size=64)))
def test_id_codec(token: str) -> None:
    with bounded():
        verified = IDS.verify(token)
        log_id = IDS.log_id(token)
    assert (verified is not None) == (token in ISSUED)
    assert len(log_id) == 16 and (len(token) < 8 or token not in log_id)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Structured input is derived from one drawn byte string too (see ``hostile.render``): each
# field of a record or claim set is absent, valid, or replaced by an odd value, byte by byte.
NOW = int(FakeClock().now)
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, 2**64, -(2**63), 1e308, float("nan"), float("inf"), "",
    "x", "1800000000", "\ud800", "\x00", [], {}, [1, "x"], {"a": 1}, {"\ud800": 1},
    {"k": [None, {"n": float("nan")}]}, {"k": 1e400}, {"": ""}, {"k": "\r\n;"},
    [[[[[[[[[[[]]]]]]]]]]], "A" * 5000,
]
VALID_CLAIMS: dict[str, Any] = {
    "sid": "c2lkLXNpZC1zaWQtc2lkLXM", "iat": NOW, "nbf": NOW, "exp": NOW + 3600, "ct": NOW,
    "uid": "alice", "d": {"user": "alice"}, "iss": "x", "aud": "y", "extra": 1, "ub": NOW,
    "m": {"au": NOW, "xi": 600.0, "xa": 86400, "xp": False, "dn": "Phone", "zz": [1]},
}


def pick(blob: bytes, valid: dict[Any, Any], render_bytes: Any) -> dict[Any, Any]:
    """A mapping with each of ``valid``'s entries absent, valid, odd, or hostile bytes."""
    out: dict[Any, Any] = {}
    bytes_left = iter(blob)
    for name, good in valid.items():
        mode = next(bytes_left, 1)
        if mode % 4 == 1:
            out[name] = good
        elif mode % 4 == 2:
            out[name] = ODD_VALUES[next(bytes_left, 0) % len(ODD_VALUES)]
        elif mode % 4 == 3:
            size = (mode >> 2) % 12
            out[name] = render_bytes(bytes(next(bytes_left, 0) for _ in range(size)))
    return out


def sign(payload: bytes, header: bytes | None = None) -> str:
    """A token over any payload bytes, correctly signed with the engine's own key."""
    backend: Any = JWT_ENGINE.backend
    head = b64(header) if header is not None else backend.keys.header_b64
    signing_input = head + "." + b64(payload)
    signature = backend.keys.alg.sign(signing_input.encode(), backend.keys.sign)
    return signing_input + "." + b64(signature)


def claims_payload(blob: bytes) -> bytes:
    claims = pick(blob, VALID_CLAIMS, render)
    return json.dumps(claims, allow_nan=True).encode("utf-8", "surrogatepass")


@seeded
@FUZZ
@given(value=st.one_of(
    cookie_value([JWT_COOKIE]),
    st.binary(max_size=40).map(lambda blob: sign(claims_payload(blob))),
    st.binary(max_size=300).map(sign),
    st.tuples(st.binary(max_size=80), st.binary(max_size=80)).map(lambda p: sign(p[1], p[0])),
    st.binary(max_size=40).map(lambda blob: sign(claims_payload(blob), claims_payload(blob))),
))
def test_jwt_decoder(value: str) -> None:
    backend: Any = JWT_ENGINE.backend
    with bounded():
        token = backend._decode_uncached(value)
    assert_well_typed(token)


def assert_well_typed(token: Any) -> None:
    if token is None:
        return
    # Accepted only with a well-typed payload, its data re-encoded as JSON text.
    assert isinstance(token.sid, str) and isinstance(token.expires_at, float)
    for text in token.fields.values():
        decode_value(text)
    assert checked_meta(token.meta) == token.meta  # facts of the right types only


JWE_ENGINE, JWE_COOKIE = genuine_engine("jwt://?encrypted=true")


def seal(payload: bytes, header: bytes | None = None) -> str:
    """An encrypted token over any plaintext, sealed with the engine's own key (the header
    replaced by ``header``'s bytes when given: then it is not one the engine writes)."""
    token: str = JWE_ENGINE.backend.encryption.seal(payload)  # type: ignore[attr-defined]
    if header is None:
        return token
    return ".".join([b64(header), *token.split(".")[1:]])


@seeded
@FUZZ
@given(value=st.one_of(
    cookie_value([JWE_COOKIE]),
    st.binary(max_size=40).map(lambda blob: seal(claims_payload(blob))),
    st.binary(max_size=300).map(seal),
    st.tuples(st.binary(max_size=80), st.binary(max_size=80)).map(lambda p: seal(p[1], p[0])),
    st.lists(st.binary(max_size=60), min_size=5, max_size=5).map(
        lambda parts: ".".join(b64(part) for part in parts)),
))
def test_encrypted_token_decoder(value: str) -> None:
    backend: Any = JWE_ENGINE.backend
    with bounded():
        token = backend._decode_uncached(value)
    assert_well_typed(token)


VALID_REDIS = {b"f": b"1", b"c": b"1800000000.0", b"e": b"1800003600.0", b"a": b"1800000000.0",
               b"u": b"alice", b"i": b"inst-a", b"d:cart": b'["apple"]', b"d:\xff": b"1",
               b"d:": b"{}", b"x": b"?", b"m": b'{"au":1800000000.0,"xi":600,"dn":"Phone"}'}


@seeded
@FUZZ
@given(blob=st.binary(max_size=60))
def test_redis_record_decoder(blob: bytes) -> None:
    raw = {name: value if isinstance(value, bytes) else
           json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
           for name, value in pick(blob, VALID_REDIS, bytes).items()}
    with bounded():
        record = parse_redis_record(raw)
    if record is not None:
        assert raw[b"f"] == b"1"
        assert all(isinstance(v, str) for v in record.fields.values())
        assert checked_meta(record.meta) == record.meta


SQL = SQLStore.from_url("sqlite://")
SQL_DATA = ['{"cart":"[\\"apple\\"]"}', "[" * 100_000, '{"a":' * 50_000, "\x80\x04\x95",
            "{}", '{"a":1}', '{"a":"x","a":"y"}', '{"\\ud800":"1"}', "null", '"x"', "NaN"]


@seeded
@FUZZ
@given(choice=st.integers(0, len(SQL_DATA) + 2), blob=st.binary(max_size=60))
def test_sql_record_decoder(choice: int, blob: bytes) -> None:
    data: Any = SQL_DATA[choice] if choice < len(SQL_DATA) else (
        render(blob) if choice == len(SQL_DATA) else
        json.dumps(pick(blob, {"cart": '["apple"]', "n": "1", "u": '"x"'}, render)))
    fmt = ODD_VALUES[blob[0] % len(ODD_VALUES)] if blob[:1] > b"\xf0" else 1
    meta = (None if blob[-1:] < b"\x40" else render(blob[1:]) if blob[-1:] < b"\x80" else
            json.dumps(pick(blob[::-1], {"au": 1.5, "xi": 60, "xp": True, "dn": "x"}, render),
                       allow_nan=True))
    row = SimpleNamespace(format=fmt, data=data, created_at=1.0, expires_at=2.0,
                          accessed_at=1.0, user_id=None, version=1, instance=None, meta=meta)
    with bounded():
        record = SQL._record(row)  # type: ignore[arg-type]
    if record is not None:
        assert fmt == 1 and record.fields == decode_fields(data)
        assert all(isinstance(v, str) for v in record.fields.values())
        assert checked_meta(record.meta) == record.meta


# --- the middlewares, called directly -------------------------------------------------------
def _store_len(engine: SessionEngine) -> int:
    store = engine.store
    return len(store) if isinstance(store, MemoryStore) else 0


class Asgi:
    """One ASGI app under sessionkit's middleware, driven on one event loop."""

    def __init__(self, engine: SessionEngine) -> None:
        self.app = make("fastapi", engine=engine)
        self.loop = asyncio.new_event_loop()

    def get(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, list[Any], bytes]:
        messages: list[dict[str, Any]] = []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/get", "raw_path": b"/get",
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("t", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        self.loop.run_until_complete(self.app(scope, receive, send))
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages
                        if m["type"] == "http.response.body")
        return start["status"], list(start.get("headers", [])), body


@pytest.fixture(scope="module")
def asgi_apps() -> Iterator[dict[str, Asgi]]:
    apps = {"memory": Asgi(SERVER_ENGINE), "jwt": Asgi(JWT_ENGINE)}
    yield apps
    for app in apps.values():
        app.loop.close()


def _assert_fresh_or_genuine(engine: SessionEngine, status: int, body: bytes,
                             set_cookies: list[str]) -> None:
    assert status == 200, body
    assert json.loads(body) in ({}, DATA)  # nobody else's session, nothing half-parsed
    # A read-only request sets no cookie, except that local mode re-issues a genuine cookie
    # that names another instance (the session now lives here): the same id, this route.
    allowed = [SERVER_COOKIE] if engine is SERVER_ENGINE else []
    for cookie in set_cookies:
        assert cookie.split(";")[0].split("=", 1)[1] in allowed, cookie


@seeded
@FUZZ
@given(mode=st.sampled_from(["memory", "jwt"]), headers=raw_header_lists(GENUINE))
def test_asgi_middleware(asgi_apps: dict[str, Asgi], mode: str,
                         headers: list[tuple[bytes, bytes]]) -> None:
    app = asgi_apps[mode]
    engine = SERVER_ENGINE if mode == "memory" else JWT_ENGINE
    records = _store_len(engine)
    with bounded():
        status, sent, body = app.get(headers)
    _assert_fresh_or_genuine(engine, status, body,
                             [v.decode("latin-1") for k, v in sent if k == b"set-cookie"])
    assert _store_len(engine) == records  # an unknown id never creates a record


def wsgi_call(app: Any, cookie: str) -> tuple[str, list[tuple[str, str]], bytes]:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/get", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": None,
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_COOKIE": cookie, "HTTP_HOST": "localhost",
    }
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    chunks = app(environ, start_response)
    body = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return captured[0], captured[1], body


def wsgi_text(text: str) -> str:
    """What a WSGI server would put in ``HTTP_COOKIE``: the header's bytes read as latin-1."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


@pytest.fixture(scope="module")
def wsgi_apps() -> dict[str, tuple[Any, SessionEngine]]:
    apps: dict[str, tuple[Any, SessionEngine]] = {}
    for store, engine in (("memory", SERVER_ENGINE), ("jwt", JWT_ENGINE)):
        apps[f"wsgi-{store}"] = make("wsgi", engine=engine), engine
        flask = make("flask", store=engine.config.store, secret_key=KEY, instance_id=INSTANCE)
        flask.session_interface.engine = engine
        apps[f"flask-{store}"] = flask, engine
    return apps


@seeded
@FUZZ
@given(which=st.sampled_from(["flask-memory", "flask-jwt", "wsgi-memory", "wsgi-jwt"]),
       cookie=st.one_of(cookie_header(GENUINE), cookie_header(GENUINE).map(wsgi_text)))
def test_wsgi_middleware(wsgi_apps: dict[str, tuple[Any, SessionEngine]], which: str,
                         cookie: str) -> None:
    app, engine = wsgi_apps[which]
    records = _store_len(engine)
    with bounded():
        status, headers, body = wsgi_call(app, cookie)
    _assert_fresh_or_genuine(engine, int(status[:3]), body,
                             [v for k, v in headers if k.lower() == "set-cookie"])
    assert _store_len(engine) == records


# --- the local-mode worker lock, among planted files ----------------------------------------------
#: What a local user may have left at the lock file's path, and at its directory's.
AT_FILE = ["nothing", "garbage", "link-to-victim", "dangling-link", "link-to-dir", "dir",
           "fifo", "foreign-file", "locked"]
AT_DIR = ["nothing", "ours", "ours-loose", "link", "foreign", "foreign-open", "file"]
NOBODY = 65534
_instances = itertools.count()


@contextlib.contextmanager
def temp_root() -> Iterator[Path]:
    """A fresh directory standing for /tmp (``tempfile.tempdir`` points there meanwhile)."""
    with tempfile.TemporaryDirectory() as root:
        saved, tempfile.tempdir = tempfile.tempdir, str(Path(root) / "tmp")
        try:
            yield Path(root)
        finally:
            tempfile.tempdir = saved


def _plant_dir(folder: Path, how: str, root: Path) -> None:
    if how == "link":
        (root / "elsewhere").mkdir()
        folder.symlink_to(root / "elsewhere")
    elif how == "file":
        folder.write_bytes(b"not a directory")
    elif how != "nothing":
        folder.mkdir(mode=0o700)
        if how in ("ours-loose", "foreign-open"):
            folder.chmod(0o777)
        if how.startswith("foreign"):
            os.chown(folder, NOBODY, NOBODY)


def _plant_file(path: Path, how: str, content: bytes, victim: Path) -> int | None:
    """Plant ``how`` at ``path``; for "locked", the descriptor holding the lock."""
    if how == "garbage" or how == "foreign-file" or how == "locked":
        path.write_bytes(content)
        if how == "foreign-file":
            os.chown(path, NOBODY, NOBODY)
        if how == "locked":
            fd = os.open(path, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd
    elif how == "link-to-victim":
        path.symlink_to(victim)
    elif how == "dangling-link":
        path.symlink_to(path.parent / "nowhere")
    elif how == "link-to-dir":
        path.symlink_to(path.parent.parent)
    elif how == "dir":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files needs root")
@seeded
@settings(FUZZ, max_examples=max(100, EXAMPLES // 10))
@given(at_dir=st.sampled_from(AT_DIR), at_file=st.sampled_from(AT_FILE),
       content=st.binary(max_size=40))
def test_worker_lock_among_planted_files(at_dir: str, at_file: str, content: bytes) -> None:
    """Whatever was planted at the lock directory's or file's path (links to a file the app
    may write, FIFOs, another user's files, garbage, a lock already taken), the claim never
    raises, never blocks, never writes through a link or into another user's directory, and
    leaves nothing behind once released. Examples: a tenth of ``SESSIONKIT_FUZZ_EXAMPLES``
    (file system work costs more per input than parsing)."""
    with temp_root() as root:
        shared = root / "tmp"
        shared.mkdir(mode=0o1777)
        victim = root / "victim"
        victim.write_bytes(b"precious")
        instance = f"fuzz-{next(_instances)}"
        path = workers.lock_path(instance)
        if at_dir == "nothing" and at_file != "nothing":
            at_dir = "ours"  # a file needs its directory
        _plant_dir(path.parent, at_dir, root)
        usable = at_dir in ("nothing", "ours", "ours-loose")
        holder_fd = _plant_file(path, at_file, content, victim) if usable else None
        # (the two directories' own times change as the lock comes and goes, and a regular
        # file of this user at the lock's path is the lock: used, then removed)
        ours = (shared, path.parent, *([path] if usable and at_file == "garbage" else []))
        before = {p: p.lstat() for p in root.rglob("*") if p not in ours}
        try:
            with bounded():
                holder = workers.claim(instance)
                workers.release()
        finally:
            if holder_fd is not None:
                os.close(holder_fd)
        assert victim.read_bytes() == b"precious"
        if at_file == "locked" and usable:  # reported, with the pid the holder wrote
            words = content[:21].split()
            written = int(words[0]) if words and words[0].isdigit() else workers.UNKNOWN_PID
            assert holder == (None if written == os.getpid() else written)
        else:
            assert holder is None
        for planted, info in before.items():  # nothing planted was followed, changed or gone
            now = planted.lstat()
            assert (now.st_mode, now.st_uid, now.st_size, now.st_mtime_ns) == (
                info.st_mode, info.st_uid, info.st_size, info.st_mtime_ns), planted
        if not usable:
            assert not any(p.name.endswith(".lock") for p in root.rglob("*")), "wrote there"
        elif at_file == "nothing":
            assert not path.exists() and not path.parent.exists()  # removed on release
