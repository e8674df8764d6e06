"""Flask integration: ``SessionKit(app, ...)`` makes ``flask.session`` a sessionkit Session."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, request
from flask.sessions import SessionInterface, SessionMixin

from . import peers
from ._http import UNAVAILABLE_BODY, add_vary_cookie, saves_session, unavailable
from .config import SessionConfig
from .engine import SessionEngine
from .errors import ConfigError, StoreUnavailable
from .session import Session, UnavailableSession
from .stores import Store

EXTENSION_KEY = "sessionkit"


class FlaskSession(Session, SessionMixin):
    """A sessionkit Session that also speaks Flask's ``SessionMixin``."""

    @property
    def new(self) -> bool:  # type: ignore[override]
        return self._is_new

    @property
    def permanent(self) -> bool:
        """Always true: the cookie's lifetime follows ``cookie_persistent`` and the timeouts."""
        return True

    @permanent.setter
    def permanent(self, value: bool) -> None:
        """Accepted and ignored, so code written for Flask's cookie sessions keeps working."""


class _UnavailableFlaskSession(UnavailableSession, FlaskSession):
    pass


class SessionKitInterface(SessionInterface):
    """Flask ``SessionInterface`` that delegates to a ``SessionEngine``."""

    def __init__(self, engine: SessionEngine) -> None:
        self.engine = engine

    def open_session(self, app: Flask, request: Any) -> SessionMixin:
        try:
            session: FlaskSession = self.engine.load(request.environ.get("HTTP_COOKIE"))  # type: ignore[assignment]
        except StoreUnavailable as error:
            return _UnavailableFlaskSession(error)
        return session

    def is_null_session(self, obj: object) -> bool:
        return isinstance(obj, UnavailableSession) or super().is_null_session(obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, Session)
        if not saves_session(response.status_code):
            return
        try:
            result = self.engine.commit(session, https=request.is_secure)
        except StoreUnavailable as error:
            # Too late for an error handler: turn this response into the 503 itself.
            response.status_code = 503
            response.set_data(UNAVAILABLE_BODY)
            response.headers.pop("Set-Cookie", None)
            for name, value in unavailable(error, self.engine.config.retry_after):
                response.headers[name] = value
            return
        if result.vary:  # direct header edit: werkzeug's response.vary re-parses the header
            headers = response.headers
            headers["Vary"] = add_vary_cookie(headers.get("Vary"))
        for cookie in result.set_cookies:
            response.headers.add("Set-Cookie", cookie)
        for name, value in result.headers:
            response.headers[name] = value


def _unavailable_response(error: StoreUnavailable) -> Response:
    engine: SessionEngine = current_app.extensions[EXTENSION_KEY]
    return Response(UNAVAILABLE_BODY, 503, headers=unavailable(error, engine.config.retry_after))


class SessionKit:
    """``SessionKit(app, store="redis://...", secret_key=KEY)`` or ``init_app(app)`` later.

    Settings come from ``config``/kwargs, else from ``SESSIONKIT_*`` keys of ``app.config``.
    Without a ``secret_key``, Flask's ``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS``) is used.
    """

    def __init__(
        self, app: Flask | None = None, config: SessionConfig | str | None = None, **kwargs: Any
    ) -> None:
        self._config = config
        self._kwargs = kwargs
        self._engine: SessionEngine | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        store = self._kwargs.get("store")
        custom = store if isinstance(store, Store) else None  # a ready Store object
        engine = SessionEngine(self.config_for(app), store=custom, session_class=FlaskSession)
        app.session_interface = SessionKitInterface(engine)
        app.extensions[EXTENSION_KEY] = engine
        app.register_error_handler(StoreUnavailable, _unavailable_response)
        self._engine = engine

    def config_for(self, app: Flask) -> SessionConfig:
        kwargs = dict(self._kwargs)
        if isinstance(kwargs.get("store"), Store):
            kwargs["store"] = kwargs["store"].name
        if self._config is not None:
            config = SessionConfig.coerce(self._config, kwargs)
        else:
            config = SessionConfig.from_mapping(app.config, strict=True, **kwargs)
        keys = [app.config["SECRET_KEY"], *(app.config.get("SECRET_KEY_FALLBACKS") or [])] if (
            app.config.get("SECRET_KEY")) else []
        if config.migrate_from == "flask-cookie" and keys:
            # The app's own cookies were signed with its SECRET_KEY, for this long.
            lifetime = app.permanent_session_lifetime.total_seconds()
            config = SessionConfig.coerce(config, {
                "migrate_secret_key": config.migrate_secret_key or keys,
                "migrate_max_age": config.migrate_max_age or lifetime,
            })
        elif keys and not config.migrate_secret_key and peers.signs_with_flask_secret(
                config.migrate_from):
            # Flask-Session signed its cookies (SESSION_USE_SIGNER) with the same SECRET_KEY.
            config = SessionConfig.coerce(config, {"migrate_secret_key": keys})
        if config.secret_keys or not keys:
            return config
        try:
            return SessionConfig.coerce(config, {"secret_key": keys})
        except ConfigError as exc:
            raise ConfigError(
                f"Flask's SECRET_KEY was used as sessionkit's secret_key and was refused: {exc} "
                f"Or set SESSIONKIT_SECRET_KEY."
            ) from None

    @property
    def engine(self) -> SessionEngine:
        """The engine of the app this extension was last initialised with."""
        if self._engine is None:
            raise RuntimeError("SessionKit.init_app(app) has not been called")
        return self._engine
