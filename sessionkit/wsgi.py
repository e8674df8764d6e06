"""WSGI middleware for any WSGI app: the session is ``environ["sessionkit.session"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeAlias, Unpack

from ._http import UNAVAILABLE_BODY, add_vary_cookie, unavailable
from .config import SessionConfig, SessionOptions
from .engine import SessionEngine
from .errors import StoreUnavailable
from .session import Session, UnavailableSession

ENVIRON_KEY = "sessionkit.session"
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse: TypeAlias = Callable[..., Any]
WSGIApp: TypeAlias = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SessionMiddleware:
    """``app = SessionMiddleware(app, store="redis://...", secret_key=KEY)``."""

    def __init__(
        self,
        app: WSGIApp,
        config: SessionConfig | str | None = None,
        *,
        engine: SessionEngine | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.app = app
        self.engine = engine if engine is not None else SessionEngine(config, **options)
        self.engine.lifecycle.install_exit_hooks()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        engine = self.engine
        engine.lifecycle.request_started()
        session: Session
        try:
            session = engine.load(environ.get("HTTP_COOKIE"))
        except StoreUnavailable as error:
            session = UnavailableSession(error)
        environ[ENVIRON_KEY] = session
        https = environ.get("wsgi.url_scheme") == "https"
        started = False

        def start_with_session(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            nonlocal started
            if not started and not isinstance(session, UnavailableSession):
                result = engine.commit(session, https=https, status=_status_code(status))
                if result.vary or result.set_cookies or result.headers:
                    headers = list(headers)
                    if result.vary:
                        merge_vary(headers)
                    headers.extend(("Set-Cookie", c) for c in result.set_cookies)
                    headers.extend(result.headers)
            started = True
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start_with_session)
        except StoreUnavailable as error:
            if started:
                raise
            start_response(
                "503 Service Unavailable", unavailable(error, engine.config.retry_after)
            )
            return [UNAVAILABLE_BODY]


def _status_code(status: str) -> int:
    try:
        return int(status[:3])
    except ValueError:
        return 500  # not a status line: the app is broken, nothing it did is saved


def merge_vary(headers: list[tuple[str, str]]) -> None:
    """Add ``Cookie`` to the ``Vary`` header of a WSGI header list, in place."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            headers[index] = (name, add_vary_cookie(value))
            return
    headers.append(("Vary", "Cookie"))
