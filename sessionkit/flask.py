"""Flask integration: ``SessionKit(app, ...)`` makes ``flask.session`` a sessionkit Session.

Flask's own session settings are honoured as Flask honours them, read from ``app.config`` at
every request (so changing them at run time works as it does in Flask): ``SESSION_COOKIE_NAME``,
``_DOMAIN``, ``_PATH`` (else ``APPLICATION_ROOT``), ``_HTTPONLY``, ``_SECURE``, ``_SAMESITE``
(None: no attribute), ``_PARTITIONED``, ``PERMANENT_SESSION_LIFETIME`` (the idle timeout and a
permanent session's cookie lifetime), ``SESSION_REFRESH_EACH_REQUEST`` (a permanent session's
cookie is sent again on every response, so its expiry slides), ``SECRET_KEY`` and
``SECRET_KEY_FALLBACKS`` (when sessionkit has no ``secret_key`` of its own). A ``SESSIONKIT_*``
key or keyword argument wins over the Flask setting it overlaps. As in Flask, a session is
permanent only when ``session.permanent = True``; otherwise its cookie ends with the browser
session.
"""

from __future__ import annotations

import hashlib
import logging
import operator
from datetime import timedelta
from typing import Any, Unpack

from ._extras import missing_extra

try:
    from flask import Flask, Response, current_app, request
    from flask.sessions import SessionInterface, SessionMixin
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "flask", "sessionkit.flask") from None

from . import peers
from ._http import UNAVAILABLE_BODY, add_vary_cookie, unavailable
from .config import MIN_SECRET_BYTES, SessionConfig, SessionOptions
from .cookies import CookieSettings, CookieStyle, CookieWriter
from .engine import SessionEngine
from .errors import ConfigError, StoreUnavailable
from .session import Session, UnavailableSession

EXTENSION_KEY = "sessionkit"
logger = logging.getLogger("sessionkit")
#: sessionkit's default absolute timeout, kept when Flask's lifetime is shorter.
_MIN_ABSOLUTE = timedelta(days=30)


class FlaskSession(Session, SessionMixin):
    """A sessionkit Session that also speaks Flask's ``SessionMixin``."""

    __slots__ = ()

    @property
    def new(self) -> bool:  # type: ignore[override]
        return self.is_new

    @property
    def permanent(self) -> bool:
        """As in Flask: kept under ``"_permanent"``; a permanent session's cookie lasts
        ``PERMANENT_SESSION_LIFETIME``, any other ends with the browser session."""
        return bool(self.get("_permanent", False))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self["_permanent"] = bool(value)

    @property
    def cookie_persistent(self) -> bool | None:
        permanent = dict.get(self, "_permanent")
        return None if permanent is None else bool(permanent)


class _UnavailableFlaskSession(UnavailableSession, FlaskSession):
    __slots__ = ()


class SessionKitInterface(SessionInterface):
    """Flask ``SessionInterface`` that delegates to a ``SessionEngine``."""

    def __init__(self, kit: SessionKit, engine: SessionEngine) -> None:
        self.kit = kit
        self.engine = engine

    def open_session(self, app: Flask, request: Any) -> SessionMixin | None:
        # Here rather than in a ``before_request`` hook, which Flask would check for a
        # coroutine function on every request.
        self.engine.lifecycle.request_started()
        cookies = self.kit.cookies_for(app)
        if cookies is None:
            return None  # no secret key anywhere: Flask's null session says so
        try:
            # The engine saves the session with the cookie it was loaded with: Flask's
            # settings are read once per request.
            session: FlaskSession = self.engine.load(  # type: ignore[assignment]
                request.environ.get("HTTP_COOKIE"), cookies)
        except StoreUnavailable as error:
            return _UnavailableFlaskSession(error)
        return session

    def is_null_session(self, obj: object) -> bool:
        return isinstance(obj, (UnavailableSession, self.null_session_class))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, Session)
        try:
            result = self.engine.commit(session, https=_request_is_secure,
                                        status=response.status_code)
        except StoreUnavailable as error:
            # Too late for an error handler: turn this response into the 503 itself.
            response.status_code = 503
            response.set_data(UNAVAILABLE_BODY)
            response.headers.pop("Set-Cookie", None)
            for name, value in unavailable(error, self.engine.config.retry_after):
                response.headers[name] = value
            return
        headers = response.headers
        if result.vary:  # werkzeug's response.vary would parse and rebuild the header
            vary = headers.getlist("Vary")  # (``get`` of a missing header raises inside)
            if not vary:
                headers.add("Vary", "Cookie")
            else:
                headers["Vary"] = add_vary_cookie(", ".join(vary))
        for cookie in result.set_cookies:
            headers.add("Set-Cookie", cookie)
        for name, value in result.headers:
            headers[name] = value


def _request_is_secure() -> bool:
    """Asked by the engine only when it writes a cookie (``request`` is a context lookup)."""
    return bool(request.is_secure)


def _unavailable_response(error: StoreUnavailable) -> Response:
    engine: SessionEngine = current_app.extensions[EXTENSION_KEY]
    return Response(UNAVAILABLE_BODY, 503, headers=unavailable(error, engine.config.retry_after))


#: sessionkit settings a Flask setting also gives, with the Flask keys they come from.
_FLASK_COOKIE_SETTINGS = {
    "cookie_name": "SESSION_COOKIE_NAME",
    "cookie_domain": "SESSION_COOKIE_DOMAIN",
    "cookie_path": "SESSION_COOKIE_PATH",
    "cookie_httponly": "SESSION_COOKIE_HTTPONLY",
    "cookie_secure": "SESSION_COOKIE_SECURE",
    "cookie_samesite": "SESSION_COOKIE_SAMESITE",
    "cookie_partitioned": "SESSION_COOKIE_PARTITIONED",
    "cookie_refresh": "SESSION_REFRESH_EACH_REQUEST",
}
#: The ``app.config`` values a request's cookie depends on, read in one C call: their tuple is
#: the key of the cookie writers already made (Flask's default config has every one of them).
_SNAPSHOT_KEYS = (*_FLASK_COOKIE_SETTINGS.values(), "APPLICATION_ROOT")
_FLASK_COOKIE_SNAPSHOT = operator.itemgetter(*_SNAPSHOT_KEYS)


class SessionKit:
    """``SessionKit(app, store="redis://...", secret_key=KEY)`` or ``init_app(app)`` later.

    Settings come from ``config``/kwargs, else from ``SESSIONKIT_*`` keys of ``app.config``,
    and Flask's own session settings fill in the rest (module docstring). Without a
    ``secret_key``, Flask's ``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS``) is used.
    """

    def __init__(
        self, app: Flask | None = None, config: SessionConfig | str | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        self._config = config
        self._kwargs: dict[str, Any] = dict(options)
        self._engine: SessionEngine | None = None
        self._explicit: frozenset[str] = frozenset()
        self._own_secret = False
        self._seen_keys: tuple[Any, Any] | None = None
        self._has_secret = False
        self._writers: dict[tuple[Any, ...], CookieWriter] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = self.config_for(app)
        engine = SessionEngine(config, session_class=FlaskSession,
                               cookie_style=CookieStyle.WERKZEUG)
        engine.lifecycle.install_exit_hooks()
        self._engine = engine
        self._seen_keys = None
        self._writers = {}
        app.session_interface = SessionKitInterface(self, engine)
        app.extensions[EXTENSION_KEY] = engine
        app.register_error_handler(StoreUnavailable, _unavailable_response)

    def config_for(self, app: Flask) -> SessionConfig:
        """The settings at startup: sessionkit's own, then Flask's where sessionkit has none."""
        kwargs = dict(self._kwargs)
        if self._config is not None:
            config = SessionConfig.coerce(self._config, kwargs)
            explicit = set(SessionConfig.__dataclass_fields__)  # a whole config
        else:
            config = SessionConfig.from_mapping(app.config, strict=True, **kwargs)
            explicit = {key[len("SESSIONKIT_"):].lower() for key in app.config
                        if key.startswith("SESSIONKIT_")} | set(kwargs)
        self._explicit = frozenset(explicit)
        self._own_secret = bool(config.secret_keys)
        flask: dict[str, Any] = {}
        lifetime: timedelta = app.permanent_session_lifetime
        if "idle_timeout" not in explicit:
            flask["idle_timeout"] = lifetime
        if "cookie_max_age" not in explicit:
            flask["cookie_max_age"] = lifetime
        if "absolute_timeout" not in explicit:
            flask["absolute_timeout"] = max(lifetime, _MIN_ABSOLUTE)
        if "cookie_persistent" not in explicit:
            flask["cookie_persistent"] = False  # Flask: permanent only when asked
        flask.update(self._cookie_overrides(app))
        keys = _flask_keys(app)
        if config.migrate_from == "flask-cookie" and keys:
            # The app's own cookies were signed with its SECRET_KEY, for this long.
            flask["migrate_secret_key"] = config.migrate_secret_key or keys
            flask["migrate_max_age"] = config.migrate_max_age or lifetime
        elif keys and not config.migrate_secret_key and peers.signs_with_flask_secret(
                config.migrate_from):
            # Flask-Session signed its cookies (SESSION_USE_SIGNER) with the same SECRET_KEY.
            flask["migrate_secret_key"] = keys
        if not self._own_secret and keys:
            flask["secret_key"] = _usable(keys)
        try:
            return SessionConfig.coerce(config, flask)
        except ConfigError as exc:
            raise ConfigError(f"Flask's session settings cannot be honoured: {exc}") from None

    def _cookie_overrides(self, app: Flask) -> dict[str, Any]:
        """Flask's cookie settings, for the sessionkit settings not given explicitly."""
        config = app.config
        found: dict[str, Any] = {}
        for name, key in _FLASK_COOKIE_SETTINGS.items():
            if name in self._explicit or key not in config:
                continue
            value = config[key]
            if name == "cookie_path":
                value = value or config.get("APPLICATION_ROOT") or "/"
            elif name == "cookie_name" and not value:
                continue
            found[name] = value
        return found

    def cookies_for(self, app: Flask) -> CookieWriter | None:
        """The cookie of this request, from ``app.config`` as it is now (cached while it does
        not change); None when there is no secret key at all (Flask's null session)."""
        engine = self._engine  # (not the property: this runs per request, after init_app)
        assert engine is not None
        if not self._own_secret:
            self._follow_secret_key(app, engine)
            if not self._has_secret:
                return None
        config = app.config
        try:  # the settings as they are now, without building the overrides every time
            try:
                signature: Any = _FLASK_COOKIE_SNAPSHOT(config)
            except KeyError:  # an older Flask, or a setting deleted
                signature = tuple([config.get(key, KeyError) for key in _SNAPSHOT_KEYS])
            writer = self._writers.get(signature)
        except TypeError:  # an unhashable value: no caching
            signature, writer = None, None
        if writer is None:
            overrides = self._cookie_overrides(app)
            try:
                settings = SessionConfig.coerce(engine.config, overrides)
            except ConfigError as exc:
                raise ConfigError(f"Flask's session cookie settings are invalid: {exc}"
                                  ) from None
            writer = CookieWriter(CookieSettings.from_config(settings), CookieStyle.WERKZEUG)
            if signature is not None:
                if len(self._writers) > 64:
                    self._writers.clear()
                self._writers[signature] = writer
        return writer

    def _follow_secret_key(self, app: Flask, engine: SessionEngine) -> None:
        """Flask's ``SECRET_KEY`` may be set or rotated after ``init_app``: follow it."""
        config = app.config  # (``app.secret_key`` is this lookup behind a descriptor)
        seen = (config.get("SECRET_KEY"), config.get("SECRET_KEY_FALLBACKS"))
        if self._seen_keys is not None and seen[0] is self._seen_keys[0] and (
                seen[1] is self._seen_keys[1]):
            return
        self._seen_keys = seen
        keys = _flask_keys(app)
        self._has_secret = bool(keys)
        if keys:
            engine.rekey(_usable(keys))

    @property
    def engine(self) -> SessionEngine:
        """The engine of the app this extension was last initialised with."""
        if self._engine is None:
            raise RuntimeError("SessionKit.init_app(app) has not been called")
        return self._engine


def _flask_keys(app: Flask) -> list[str | bytes]:
    if not app.config.get("SECRET_KEY"):
        return []
    return [app.config["SECRET_KEY"], *(app.config.get("SECRET_KEY_FALLBACKS") or [])]


def _usable(keys: list[str | bytes]) -> tuple[bytes, ...]:
    """Flask's secret keys as sessionkit secrets. A key shorter than sessionkit requires is
    accepted, because the app already signs its sessions with it, but stretched through a
    hash (which adds no strength) and reported: set a longer SECRET_KEY or
    SESSIONKIT_SECRET_KEY."""
    usable = []
    for key in keys:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        if len(raw) < MIN_SECRET_BYTES:
            logger.warning(
                "sessionkit: Flask's SECRET_KEY (or a fallback) is %d bytes, under the %d "
                "sessionkit asks for; it is used, but any secret that short can be guessed. "
                "Generate one with: python -c \"import secrets; print(secrets.token_urlsafe(48))\"",
                len(raw), MIN_SECRET_BYTES)
            raw = hashlib.sha256(b"sessionkit/v1 short-secret " + raw).digest()
        usable.append(raw)
    return tuple(usable)
