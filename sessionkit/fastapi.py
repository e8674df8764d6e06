"""FastAPI integration: ``def view(session: SessionDep)``.

The session itself comes from ``sessionkit.asgi.SessionMiddleware``; this dependency only
hands it to a view with the right type (``request.session`` works just as well).
"""

from __future__ import annotations

from typing import Annotated

from ._extras import missing_extra
from .session import Session

try:
    from fastapi import Depends
    from starlette.requests import HTTPConnection
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "fastapi", "sessionkit.fastapi") from None


def get_session(connection: HTTPConnection) -> Session:
    """The request's session. Add ``SessionMiddleware`` to the app to get one."""
    if "session" not in connection.scope:
        raise RuntimeError(
            "no session on this request: add sessionkit.asgi.SessionMiddleware to the app "
            "(app.add_middleware(SessionMiddleware, store=..., secret_key=...))"
        )
    session = connection.session
    if not isinstance(session, Session):
        raise RuntimeError(
            "request.session is not a sessionkit Session: another SessionMiddleware is "
            "installed; keep only sessionkit.asgi.SessionMiddleware"
        )
    return session


SessionDep = Annotated[Session, Depends(get_session)]
