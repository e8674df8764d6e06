"""SessionConfig: every setting in one validated value, built from kwargs, a URL or the environment.

Validation happens here, at startup, so a wrong setting fails the deploy with the fix in the
message instead of failing a user's request later.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeAlias, TypedDict
from urllib.parse import urlsplit

from .errors import ConfigError
from .redact import redact_url
from .stores.base import Store

Duration: TypeAlias = float | int | timedelta | str
SameSite: TypeAlias = Literal["lax", "strict", "none"]

MIN_SECRET_BYTES = 32
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# RFC 6265 cookie-name: an RFC 7230 token.
COOKIE_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DOMAIN_RE = re.compile(r"^\.?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_PATH_RE = re.compile(r"^/[\x21-\x3a\x3c-\x7e]*$")  # printable ASCII without ';'
_TRUE = {"1", "true", "yes", "on"}
#: Framework cookies whose sessions ``migrate_from`` can import.
IMPORTABLE_COOKIES = ("flask-cookie", "starlette-cookie")
_FALSE = {"0", "false", "no", "off"}
#: Settings that hold store URLs: shown redacted (``sessionkit.redact``) by ``repr``.
URL_SETTINGS = frozenset({"store", "revocation_store", "fallback_store", "drain_to",
                          "migrate_from"})


def parse_duration(value: object, name: str) -> float:
    """Seconds from a number, a ``timedelta`` or a string such as ``"90"``, ``"30m"``, ``"14d"``."""
    seconds: float
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration, not a boolean ({value!r})")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value.lower())
        if match is None:
            raise ConfigError(
                f"{name}={value!r} is not a duration: use seconds (3600) or a number with a "
                f"unit s, m, h, d or w (such as '30m' or '14d')"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ConfigError(f"{name} must be seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive, finite duration (got {value!r})")
    return seconds


def parse_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ConfigError(f"{name} must be true or false (got {value!r})")


@dataclasses.dataclass(frozen=True, slots=True)
class SessionConfig:
    """How sessions are kept. The same value configures every mode; ``store`` picks the mode."""

    #: A store URL (which picks the mode), or a ready ``Store`` object (a custom store, or
    #: one built around a client the app made itself).
    store: str | Store = "memory://"
    secret_key: str | bytes | Sequence[str | bytes] | None = dataclasses.field(
        default=None, repr=False
    )
    cookie_name: str = "session"
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_secure: bool | Literal["auto"] = "auto"
    cookie_httponly: bool = True
    #: ``"lax"``, ``"strict"``, ``"none"`` (needs Secure), or None for no attribute at all.
    cookie_samesite: SameSite | None = "lax"
    #: The ``Partitioned`` attribute (CHIPS: a cookie kept per top-level site; needs Secure).
    cookie_partitioned: bool = False
    #: False: a browser-session cookie (no expiry), gone when the browser closes.
    cookie_persistent: bool = True
    #: The cookie's ``Max-Age`` on every ``Set-Cookie``, counted from that response (as
    #: Starlette's ``max_age`` and Flask's ``PERMANENT_SESSION_LIFETIME``); None: the cookie
    #: lives until the session's absolute deadline.
    cookie_max_age: Duration | None = None
    #: Send a persistent cookie again on every response of a stored session, so its expiry
    #: slides (Flask's ``SESSION_REFRESH_EACH_REQUEST`` for permanent sessions).
    cookie_refresh: bool = False
    idle_timeout: Duration = timedelta(days=14)
    absolute_timeout: Duration = timedelta(days=30)
    instance_id: str | None = None
    retry_after: int = 5
    on_affinity_miss: Literal["new-session", "fallback"] = "new-session"
    fallback_store: str | None = None
    drain_to: str | None = None
    drain_timeout: Duration = 10.0
    route_cookie: str | None = None
    debug_header: bool = False
    revocation_store: str | None = None
    migrate_from: str | None = None
    migrate_secret_key: str | bytes | Sequence[str | bytes] | None = dataclasses.field(
        default=None, repr=False
    )
    migrate_max_age: Duration | None = None
    migrate_cookie_name: str | None = None
    #: Called with each imported session, so the app can bind its user
    #: (``session.user_id = session["user"]["id"]``) and a log-out-everywhere reaches it.
    migrate_hook: Callable[[Any], None] | None = dataclasses.field(
        default=None, repr=False, compare=False)
    #: Hybrid mode: keep a bounded copy of the sessions this instance serves in front of a
    #: shared store (``sessionkit.nearcache``); reads hit it when provably current.
    near_cache: bool = False
    near_cache_size: int = 10_000
    #: How long a copy may serve reads without the store confirming it: the bound on seeing
    #: a log-out-everywhere (or a concurrent write through another instance).
    near_cache_max_age: Duration = 30.0
    jwt_private_key: str | bytes | None = dataclasses.field(default=None, repr=False)
    jwt_public_keys: Sequence[str | bytes] | None = None
    #: Epoch seconds now. None reads ``time.time`` at every call, so that tests which patch
    #: it (freezegun, ``mock.patch("time.time")``) move sessionkit's clock too.
    clock: Callable[[], float] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def __repr__(self) -> str:
        """Every shown setting, store URLs with their secrets replaced by ``***``: a config
        printed to a log or a traceback gives no password away."""
        shown = []
        for field in dataclasses.fields(self):
            if field.repr:
                value = getattr(self, field.name)
                if field.name in URL_SETTINGS and isinstance(value, str):
                    value = redact_url(value)
                shown.append(f"{field.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.store, Store):
            _check_store_url(self.store, "store")
        set_(self, "secret_key", _normalize_secrets(self.secret_key))
        set_(self, "idle_timeout", parse_duration(self.idle_timeout, "idle_timeout"))
        set_(self, "absolute_timeout", parse_duration(self.absolute_timeout, "absolute_timeout"))
        set_(self, "cookie_httponly", parse_bool(self.cookie_httponly, "cookie_httponly"))
        set_(self, "cookie_persistent", parse_bool(self.cookie_persistent, "cookie_persistent"))
        set_(self, "cookie_partitioned",
             parse_bool(self.cookie_partitioned, "cookie_partitioned"))
        set_(self, "cookie_refresh", parse_bool(self.cookie_refresh, "cookie_refresh"))
        if self.cookie_max_age is not None:
            set_(self, "cookie_max_age", parse_duration(self.cookie_max_age, "cookie_max_age"))
        if not (isinstance(self.cookie_secure, str) and self.cookie_secure.lower() == "auto"):
            set_(self, "cookie_secure", parse_bool(self.cookie_secure, "cookie_secure"))
        else:
            set_(self, "cookie_secure", "auto")
        self._check_cookie()
        if isinstance(self.retry_after, bool) or not isinstance(self.retry_after, int):
            raise ConfigError(f"retry_after must be whole seconds (got {self.retry_after!r})")
        if self.retry_after < 0:
            raise ConfigError("retry_after must be 0 or more seconds")
        for name in ("revocation_store", "fallback_store", "drain_to"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or "://" not in value):
                raise ConfigError(
                    f"{name} must be a store URL such as 'redis://host:6379/0' (got {value!r})"
                )
        self._check_affinity()
        self._check_migration()
        self._check_near_cache()
        if isinstance(self.jwt_public_keys, str | bytes):
            object.__setattr__(self, "jwt_public_keys", (self.jwt_public_keys,))
        if self.clock is not None and not callable(self.clock):
            raise ConfigError("clock must be a callable returning epoch seconds, like time.time")

    def _check_cookie(self) -> None:
        name = self.cookie_name
        if not isinstance(name, str) or not COOKIE_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"cookie_name {name!r} is not a valid cookie name: use letters, digits and "
                f"!#$%&'*+-.^_`|~ only"
            )
        if not isinstance(self.cookie_path, str) or not _PATH_RE.match(self.cookie_path):
            raise ConfigError(
                f"cookie_path {self.cookie_path!r} must start with '/' and hold printable "
                f"ASCII without ';' or spaces"
            )
        if self.cookie_domain is not None and (
            not isinstance(self.cookie_domain, str) or not _DOMAIN_RE.match(self.cookie_domain)
        ):
            raise ConfigError(
                f"cookie_domain {self.cookie_domain!r} is not a host name; leave it None to "
                f"scope the cookie to the exact host"
            )
        samesite = None if self.cookie_samesite is None else str(self.cookie_samesite).lower()
        if samesite not in ("lax", "strict", "none", None):
            raise ConfigError(
                f"cookie_samesite must be 'lax', 'strict', 'none' or None for no attribute "
                f"(got {self.cookie_samesite!r})"
            )
        object.__setattr__(self, "cookie_samesite", samesite)
        if samesite == "none" and self.cookie_secure is not True:
            raise ConfigError(
                "cookie_samesite='none' needs cookie_secure=True: browsers reject SameSite=None "
                "cookies that are not Secure"
            )
        if self.cookie_partitioned and self.cookie_secure is False:
            raise ConfigError(
                "cookie_partitioned=True needs cookie_secure=True or 'auto' (Secure is then "
                "always sent): browsers reject Partitioned cookies that are not Secure"
            )
        if name.startswith(("__Host-", "__Secure-")) and self.cookie_secure is False:
            raise ConfigError(
                f"cookie_name {name!r} uses a prefix that browsers only accept on Secure "
                f"cookies; set cookie_secure=True or 'auto' (Secure is then always sent)"
            )
        if name.startswith("__Host-") and (self.cookie_path != "/" or self.cookie_domain):
            raise ConfigError(
                "a __Host- cookie must have cookie_path='/' and no cookie_domain; "
                "browsers reject it otherwise"
            )

    def _check_affinity(self) -> None:
        set_ = object.__setattr__
        policy = str(self.on_affinity_miss).lower()
        if policy not in ("new-session", "fallback"):
            raise ConfigError(
                f"on_affinity_miss must be 'new-session' or 'fallback' "
                f"(got {self.on_affinity_miss!r})"
            )
        set_(self, "on_affinity_miss", policy)
        if policy == "fallback" and self.fallback_store is None:
            if self.drain_to is None:
                raise ConfigError(
                    "on_affinity_miss='fallback' needs fallback_store=<shared store URL> (where "
                    "draining instances leave their sessions, e.g. the same as their drain_to)"
                )
            set_(self, "fallback_store", self.drain_to)
        set_(self, "drain_timeout", parse_duration(self.drain_timeout, "drain_timeout"))
        set_(self, "debug_header", parse_bool(self.debug_header, "debug_header"))
        route = self.route_cookie
        if route is not None and (
            not isinstance(route, str) or not COOKIE_NAME_RE.fullmatch(route)
            or route == self.cookie_name
        ):
            raise ConfigError(
                f"route_cookie {route!r} must be a valid cookie name other than cookie_name"
            )

    def _check_near_cache(self) -> None:
        set_ = object.__setattr__
        set_(self, "near_cache", parse_bool(self.near_cache, "near_cache"))
        size: object = self.near_cache_size
        if isinstance(size, str) and size.strip().isdigit():
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"near_cache_size must be a whole number of sessions, 1 or more "
                              f"(got {self.near_cache_size!r})")
        set_(self, "near_cache_size", size)
        set_(self, "near_cache_max_age",
             parse_duration(self.near_cache_max_age, "near_cache_max_age"))
        if self.near_cache and self.scheme in ("memory", "jwt"):
            raise ConfigError(
                f"near_cache=True caches a shared store on each instance; {self.scheme}:// is "
                f"not one. Use it with redis://... or a SQL URL (hybrid mode), or drop "
                f"near_cache: memory:// already serves from this process, jwt:// from the cookie"
            )

    def _check_migration(self) -> None:
        source = self.migrate_from
        if source is None:
            return
        is_url = isinstance(source, str) and "://" in source
        if source not in IMPORTABLE_COOKIES and not is_url:
            raise ConfigError(
                f"migrate_from must be a store URL or one of {', '.join(IMPORTABLE_COOKIES)} "
                f"(got {source!r})"
            )
        if self.migrate_max_age is not None:
            object.__setattr__(self, "migrate_max_age",
                               parse_duration(self.migrate_max_age, "migrate_max_age"))
        name = self.migrate_cookie_name
        if name is not None and not (isinstance(name, str) and COOKIE_NAME_RE.fullmatch(name)):
            raise ConfigError(f"migrate_cookie_name {name!r} is not a valid cookie name")
        if self.migrate_hook is not None and not callable(self.migrate_hook):
            raise ConfigError("migrate_hook must be a callable taking the imported session")

    # --- derived values -------------------------------------------------------------------
    @property
    def secret_keys(self) -> tuple[bytes, ...]:
        """The secrets as bytes, current first (empty when none is configured)."""
        return self.secret_key  # type: ignore[return-value]  # normalized in __post_init__

    @property
    def idle_seconds(self) -> float:
        return self.idle_timeout  # type: ignore[return-value]  # normalized to float

    @property
    def drain_seconds(self) -> float:
        return self.drain_timeout  # type: ignore[return-value]  # normalized to float

    @property
    def near_cache_seconds(self) -> float:
        return self.near_cache_max_age  # type: ignore[return-value]  # normalized to float

    @property
    def absolute_seconds(self) -> float:
        return self.absolute_timeout  # type: ignore[return-value]  # normalized to float

    @property
    def scheme(self) -> str:
        """The store URL's scheme (for a ``Store`` object, that of its name, else "custom")."""
        name = self.store if isinstance(self.store, str) else self.store.name
        return name.split("://", 1)[0].lower() if "://" in name else "custom"

    @property
    def store_name(self) -> str:
        """The store, for logs and status pages: never a credential."""
        return redact_url(self.store) if isinstance(self.store, str) else self.store.name

    @property
    def cookie_max_age_seconds(self) -> float | None:
        return self.cookie_max_age  # type: ignore[return-value]  # normalized to float

    def now(self) -> float:
        """Epoch seconds, from ``clock`` or else ``time.time`` looked up at call time."""
        clock = self.clock
        return clock() if clock is not None else time.time()

    # --- constructors ---------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SessionConfig:
        """``SessionConfig.from_url("redis://localhost/0", secret_key=...)``."""
        return cls.coerce(None, {"store": url, **kwargs})

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, prefix: str = "SESSIONKIT_", **kwargs: Any
    ) -> SessionConfig:
        """Read ``SESSIONKIT_<FIELD>`` variables (``SESSIONKIT_STORE``, ``SESSIONKIT_SECRET_KEY``
        with keys separated by commas, ``SESSIONKIT_IDLE_TIMEOUT=30m``, ...); kwargs win."""
        return cls.from_mapping(os.environ if environ is None else environ, prefix=prefix, **kwargs)

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any], *, prefix: str = "SESSIONKIT_", strict: bool = False,
        **kwargs: Any,
    ) -> SessionConfig:
        """Settings from ``<prefix><FIELD>`` keys of a mapping (the environment, Flask's
        ``app.config``). With ``strict``, an unknown ``<prefix>`` key is a ``ConfigError``."""
        names = {f.name for f in dataclasses.fields(cls) if f.name not in ("clock", "migrate_hook")}
        values: dict[str, Any] = {}
        for key, raw in mapping.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix):].lower()
            if name not in names:
                if strict:
                    raise ConfigError(
                        f"unknown setting {key}; valid ones: "
                        + ", ".join(prefix + n.upper() for n in sorted(names))
                    )
                continue
            values[name] = _from_text(name, raw) if isinstance(raw, str) else raw
        values.update(kwargs)
        return cls.coerce(None, values)

    @classmethod
    def coerce(
        cls, config: SessionConfig | str | None, kwargs: Mapping[str, Any] | None = None
    ) -> SessionConfig:
        """The config every entry point accepts: a ``SessionConfig``, a store URL, or None,
        each overridden by keyword arguments."""
        kwargs = dict(kwargs or {})
        if isinstance(config, str):
            kwargs.setdefault("store", config)
            config = None
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(names))}"
            )
        if config is None:
            return cls(**kwargs)
        if not isinstance(config, SessionConfig):
            raise ConfigError(f"config must be a SessionConfig or a store URL, not {config!r}")
        return dataclasses.replace(config, **kwargs) if kwargs else config



class SessionOptions(TypedDict, total=False):
    """The settings as keyword arguments (``SessionEngine(**options)``, the middlewares,
    ``SessionKit``): the fields of ``SessionConfig``, typed, so that an editor or mypy catches a
    misspelt or mistyped option before it reaches the ``ConfigError`` at startup."""

    store: str | Store
    secret_key: str | bytes | Sequence[str | bytes] | None
    cookie_name: str
    cookie_path: str
    cookie_domain: str | None
    cookie_secure: bool | Literal["auto"]
    cookie_httponly: bool
    cookie_samesite: SameSite | None
    cookie_partitioned: bool
    cookie_persistent: bool
    cookie_max_age: Duration | None
    cookie_refresh: bool
    idle_timeout: Duration
    absolute_timeout: Duration
    instance_id: str | None
    retry_after: int
    on_affinity_miss: Literal["new-session", "fallback"]
    fallback_store: str | None
    drain_to: str | None
    drain_timeout: Duration
    route_cookie: str | None
    debug_header: bool
    revocation_store: str | None
    migrate_from: str | None
    migrate_secret_key: str | bytes | Sequence[str | bytes] | None
    migrate_max_age: Duration | None
    migrate_cookie_name: str | None
    migrate_hook: Callable[[Any], None] | None
    near_cache: bool
    near_cache_size: int
    near_cache_max_age: Duration
    jwt_private_key: str | bytes | None
    jwt_public_keys: Sequence[str | bytes] | None
    clock: Callable[[], float] | None

def _check_store_url(url: object, name: str) -> None:
    """Refuse at once what a store URL shows wrong by itself: not a URL, a scheme no store
    (built in or published) answers to, a port that is not a number. What needs the store's
    driver is checked when the store is opened, still at startup."""
    from .stores import is_known_scheme, scheme_of, unknown_scheme

    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"{name} must be a URL such as 'memory://', 'redis://localhost:6379/0', "
            f"'sqlite:///sessions.db' or 'jwt://' (got {redact_url(str(url))!r})"
        )
    if not is_known_scheme(scheme_of(url)):
        raise unknown_scheme(url)
    try:
        parts = urlsplit(url)
        if "," not in parts.netloc:  # one host (Sentinel and Cluster URLs list several)
            parts.port  # noqa: B018  (parsing it is the check)
    except ValueError as exc:
        raise ConfigError(f"{name} {redact_url(url)} is not a valid URL: {exc}") from None


def _from_text(name: str, raw: str) -> Any:
    """Turn one textual setting (environment variable) into the value the field expects."""
    if name == "secret_key":
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        return keys or None
    if name in ("cookie_domain", "instance_id", "revocation_store", "jwt_private_key",
                "fallback_store", "drain_to", "route_cookie", "migrate_from",
                "migrate_cookie_name", "migrate_max_age", "cookie_max_age"):
        return raw or None
    if name == "cookie_samesite" and raw.strip().lower() in ("", "unset", "omit"):
        return None
    if name == "migrate_secret_key":
        return [k.strip() for k in raw.split(",") if k.strip()] or None
    if name == "jwt_public_keys":
        marker = "-----END PUBLIC KEY-----"
        return [part + marker for part in raw.split(marker) if part.strip()] or None
    if name == "retry_after":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"retry_after must be whole seconds (got {raw!r})") from None
    return raw


def _normalize_secrets(value: object) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple) and all(
            type(item) is bytes and len(item) >= MIN_SECRET_BYTES for item in value):
        # Already normalized (a config copied with ``dataclasses.replace``): the empty tuple
        # is "no key", not an empty list given by the user.
        return value
    items: Sequence[object]
    if isinstance(value, str | bytes):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ConfigError("secret_key must be a string or a list of strings (current key first)")
    keys: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            key = item.encode()
        elif isinstance(item, bytes):
            key = item
        else:
            raise ConfigError("secret_key must be a string or a list of strings")
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"secret_key is {len(key)} bytes; at least {MIN_SECRET_BYTES} are required. "
                f"Generate one with: python -c \"import secrets; print(secrets.token_urlsafe(48))\""
            )
        keys.append(key)
    if not keys:
        raise ConfigError("secret_key is an empty list; give at least one key")
    return tuple(keys)
