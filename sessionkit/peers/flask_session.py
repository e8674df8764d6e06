"""Flask-Session 0.8: its cookie, its record formats and its stores.

The cookie holds the session id (``secrets.token_urlsafe``), or with ``SESSION_USE_SIGNER``
the id signed by itsdangerous (``Signer(SECRET_KEY, salt="flask-session",
key_derivation="hmac")``, SHA-1). A session is kept at its key prefix (``SESSION_KEY_PREFIX``,
default ``session:``) plus the id:

- Redis: a string value, msgspec MessagePack (the default) or JSON
  (``SESSION_SERIALIZATION_FORMAT``), with a TTL;
- SQLAlchemy: a row of its table (``flask_session_table``), the same bytes in ``data``;
- filesystem / cachelib ``FileSystemCache``: a file named by the SHA-256 of the key, holding
  the expiry and a pickle of the session's dict (read by ``pickle_reader``, never unpickled).

Older Flask-Session versions pickled records in Redis and SQL too; Flask-Session 0.8 still
unpickles those, sessionkit refuses them (such a user gets a fresh session).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from ..errors import ConfigError
from ..redact import redact_url
from . import urls
from .base import PeerSource
from .msgpack_reader import MsgpackRefused, read_msgpack
from .pickle_reader import MAX_BYTES, PickleRefused, read_pickle
from .records import RecordFormat, RecordRefused, json_object

KIND = "flask-session"
PEER = "Flask-Session"
DEFAULT_PREFIX = "session:"
DEFAULT_TABLE = "sessions"
SIGNER_SALT = "flask-session"
#: Flask's flag of a permanent session, kept by Flask-Session in the data.
INTERNAL = frozenset({"_permanent"})
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")
_MAX_COOKIE = 1024
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_SQL_DIALECTS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle")


def decode_serialized(raw: bytes) -> Mapping[Any, Any]:
    """A Redis or SQL record: MessagePack, else JSON (as Flask-Session tries them)."""
    try:
        data = read_msgpack(raw)
    except MsgpackRefused:
        pass
    else:
        if isinstance(data, dict):
            return data
    try:
        return json_object(raw)
    except RecordRefused:
        raise RecordRefused(
            "neither MessagePack nor JSON (a pickle of an older Flask-Session?)") from None


def decode_pickled(raw: bytes) -> Mapping[Any, Any]:
    """A cachelib file's pickle of the session dict, read as data."""
    try:
        data = read_pickle(raw)
    except PickleRefused as exc:
        raise RecordRefused(f"a pickle that is not plain data ({exc})") from None
    if not isinstance(data, dict):
        raise RecordRefused("a pickle of something else than a session")
    return data


SERIALIZED = RecordFormat(PEER, decode_serialized, INTERNAL)
PICKLED = RecordFormat(PEER, decode_pickled, INTERNAL)


def cookie_reader(signed: bool, secrets: Sequence[str | bytes]) -> Callable[[str], str | None]:
    """The session id in a Flask-Session cookie value, or None if it is not one (tampered,
    signed with another secret, or malformed). No I/O."""
    if not signed:
        return lambda value: value if _SESSION_ID.fullmatch(value) else None
    from itsdangerous import BadSignature, Signer

    keys: Any = list(reversed(secrets))  # itsdangerous verifies with each, newest last
    signer = Signer(keys, salt=SIGNER_SALT, key_derivation="hmac")

    def read(value: str) -> str | None:
        if len(value) > _MAX_COOKIE:
            return None
        try:
            session_id = signer.unsign(value).decode("utf-8")
        except (BadSignature, UnicodeError, ValueError):
            return None
        return session_id if _SESSION_ID.fullmatch(session_id) else None

    return read


def open_source(url: str) -> tuple[PeerSource, bool]:
    """The store a ``flask-session+...`` URL names, and whether its cookies are signed."""
    _, inner = urls.split(url)
    scheme = inner.split("://", 1)[0].lower()
    name = redact_url(url)
    common: urls.Parsers = {"key_prefix": urls.text, "use_signer": urls.flag("use_signer")}
    if scheme in _REDIS_SCHEMES:
        from .redis_source import RedisValueSource

        options, plain = urls.take_options(inner, {
            **common, "socket_timeout": urls.seconds, "socket_connect_timeout": urls.seconds})
        query = {k: v for k, v in options.items() if k.startswith("socket_")}
        query["key_prefix"] = options.get("key_prefix", DEFAULT_PREFIX)
        redis_source = RedisValueSource.from_url(plain + "?" + urlencode(query),
                                                 format=SERIALIZED)
        redis_source.name = name
        return redis_source, options.get("use_signer", False)
    if scheme == "file":
        from .file_source import CacheLibFileSource

        options, plain = urls.take_options(inner, common)
        parts = urlsplit(plain)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(f"{name}: give the directory as an absolute path, "
                              f"flask-session+file:///path/to/flask_session")
        file_source = CacheLibFileSource(
            Path(unquote(parts.path)), prefix=options.get("key_prefix", DEFAULT_PREFIX),
            format=PICKLED, name=name, max_bytes=MAX_BYTES)
        return file_source, options.get("use_signer", False)
    if scheme.split("+", 1)[0] in _SQL_DIALECTS:
        from .sql_source import SQLTableSource

        options, plain = urls.take_options(
            inner, {**common, "table": urls.text, "schema": urls.text}, others=True)
        sql_source = SQLTableSource(
            plain, table=options.get("table", DEFAULT_TABLE), schema=options.get("schema"),
            prefix=options.get("key_prefix", DEFAULT_PREFIX), format=SERIALIZED)
        sql_source.name = name
        return sql_source, options.get("use_signer", False)
    raise ConfigError(
        f"{name}: Flask-Session sessions can be read from redis://, rediss://, unix://, "
        f"file:// (its filesystem and cachelib backends) or a SQLAlchemy URL"
    )

