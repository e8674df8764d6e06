"""starsessions 2.x: its cookie, its record format and its ``RedisStore``.

The cookie holds the session id itself, unsigned: ``secrets.token_hex(16)``, 32 lowercase hex
digits (anything else is not one of its ids). ``RedisStore`` keeps a session at its prefix
(default ``starsessions.``) plus the id, as the JSON of the session's dict (the default
``JsonSerializer``) with starsessions' own ``__metadata__`` (``created``, ``lifetime``,
``last_access``) inside, and a TTL: the lifetime left, or ``gc_ttl`` for browser-session
cookies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from ..errors import ConfigError
from ..redact import redact_url
from . import urls
from .base import PeerSource
from .records import RecordFormat, json_object

KIND = "starsessions"
PEER = "starsessions"
DEFAULT_PREFIX = "starsessions."
METADATA = "__metadata__"
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


def created_at(data: Mapping[Any, Any]) -> float | None:
    """When starsessions created the session, from its metadata."""
    metadata = data.get(METADATA)
    created = metadata.get("created") if isinstance(metadata, dict) else None
    if isinstance(created, int | float) and not isinstance(created, bool) and created > 0:
        return float(created)
    return None


FORMAT = RecordFormat(PEER, json_object, frozenset({METADATA}), created_at)


def cookie_reader() -> Callable[[str], str | None]:
    """The session id in a starsessions cookie value, or None if it is not one. No I/O."""
    return lambda value: value if _SESSION_ID.fullmatch(value) else None


def open_source(url: str) -> PeerSource:
    """The store a ``starsessions+redis://...`` URL names."""
    _, inner = urls.split(url)
    scheme = inner.split("://", 1)[0].lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{redact_url(url)}: starsessions sessions can be read from its "
                          f"RedisStore: starsessions+redis://, +rediss:// or +unix://")
    from .redis_source import RedisValueSource

    options, plain = urls.take_options(inner, {
        "prefix": urls.text, "socket_timeout": urls.seconds,
        "socket_connect_timeout": urls.seconds})
    query = {k: v for k, v in options.items() if k.startswith("socket_")}
    query["key_prefix"] = options.get("prefix", DEFAULT_PREFIX)
    source = RedisValueSource.from_url(plain + "?" + urlencode(query), format=FORMAT)
    source.name = redact_url(url)
    return source
