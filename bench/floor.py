"""The least a server-side session layer can do in each framework: the measured floor.

These are not session libraries. A session is a plain dict in this process's memory, found by
the cookie's value as it stands: no signature, no expiry, no affinity, no events, no change
check beyond "a key was assigned". What is left is the price of the framework's own session
hooks and of the few steps no layer can skip (find the cookie, look the session up, hand the
app a mapping, notice an assignment, send a cookie for a new session, ``Vary: Cookie``).
``bench/instructions.py`` counts them beside sessionkit's ``memory://`` so that the layer
goals can be read against what the framework itself costs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

#: Every floor session, by id (one process, never expired).
SESSIONS: dict[str, dict[str, Any]] = {}
COOKIE = "session"


def session_id(header: str | None) -> str | None:
    """The ``session`` cookie's value in a ``Cookie`` header, without any unquoting."""
    if not header:
        return None
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


class _Tracked(dict[str, Any]):
    """A dict that notices assignment (the apps assign what they change)."""

    sid: str | None = None
    modified = False
    accessed = True

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        dict.__setitem__(self, key, value)


def _saved(session: _Tracked) -> str | None:
    """Store a changed session; the cookie to set when it is new, else None."""
    if not session.modified:
        return None
    sid = session.sid
    if sid is None:
        sid = secrets.token_urlsafe(32)
        SESSIONS[sid] = dict(session)
        return f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
    SESSIONS[sid] = dict(session)
    return None


def flask(app: Any) -> None:
    """Install the floor as the Flask app's session interface."""
    from flask.sessions import SessionInterface, SessionMixin

    class FloorSession(_Tracked, SessionMixin):
        new = False

    class FloorInterface(SessionInterface):
        def open_session(self, app: Any, request: Any) -> Any:
            sid = session_id(request.environ.get("HTTP_COOKIE"))
            data = SESSIONS.get(sid) if sid else None
            session = FloorSession() if data is None else FloorSession(data)
            session.sid = sid if data is not None else None
            return session

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            response.headers.add("Vary", "Cookie")
            cookie = _saved(session)
            if cookie is not None:
                response.headers.add("Set-Cookie", cookie)

    app.session_interface = FloorInterface()


class FloorMiddleware:
    """The floor as a pure ASGI middleware (``scope["session"]``, as Starlette's)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sid = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                sid = session_id(value.decode("latin-1"))
                break
        data = SESSIONS.get(sid) if sid else None
        session = _Tracked() if data is None else _Tracked(data)
        session.sid = sid if data is not None else None
        scope["session"] = session

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.append((b"vary", b"Cookie"))
                cookie = _saved(session)
                if cookie is not None:
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
            await send(message)

        await self.app(scope, receive, sending)
