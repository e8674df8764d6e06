"""A live dashboard of an engine's sessions, to mount in your app; off unless enabled.

Shows live sessions per instance, lookups by result (hit, new, not_found, affinity_miss), the
near-cache hit rate, store latency and cookie size percentiles: a plain HTML page that polls a
JSON snapshot. The snapshot holds counters only, never a session id or session data. ::

    from sessionkit.dashboard import asgi_app, wsgi_app

    # FastAPI / Starlette: after add_middleware(SessionMiddleware, ...), so that it runs first
    # and the page's polls neither load a session nor count as lookups
    app.add_middleware(AsgiMount, path="/_sessionkit",
                       dashboard=asgi_app(engine, enabled=True, token=TOKEN))
    # (app.mount("/_sessionkit", asgi_app(...)) works too, inside the session middleware)
    # Flask (any WSGI app)
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app,
                                        {"/_sessionkit": wsgi_app(engine, enabled=True)})

With a ``token`` (at least 16 characters) the snapshot wants it as
``Authorization: Bearer <token>``; in a browser open ``/_sessionkit/#token=<token>`` (the
fragment is never sent: the page keeps the token for the tab and drops it from the address
bar). Without a token it logs a warning and answers only requests for ``localhost`` or an IP
address (DNS rebinding); ``allowed_hosts`` lists the host names to answer instead. Every
response forbids framing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .app import AsgiMount, Control, Dashboard, Request
from .snapshot import cluster_snapshot, instance_snapshot

__all__ = ["AsgiMount", "Control", "Dashboard", "Request", "asgi_app", "cluster_snapshot",
           "instance_snapshot", "wsgi_app"]


def dashboard(engine: Any, *, enabled: bool = False, token: str | None = None,
              allowed_hosts: Iterable[str] | None = None) -> Dashboard:
    """The dashboard of one engine (a ``SessionEngine``)."""
    return Dashboard(lambda: cluster_snapshot([instance_snapshot(engine)]),
                     enabled=enabled, token=token, allowed_hosts=allowed_hosts)


def asgi_app(engine: Any, *, enabled: bool = False, token: str | None = None,
             allowed_hosts: Iterable[str] | None = None) -> Any:
    """An ASGI app serving the dashboard of ``engine``; 404 everywhere unless ``enabled``."""
    return dashboard(engine, enabled=enabled, token=token, allowed_hosts=allowed_hosts).asgi


def wsgi_app(engine: Any, *, enabled: bool = False, token: str | None = None,
             allowed_hosts: Iterable[str] | None = None) -> Any:
    """A WSGI app serving the dashboard of ``engine``; 404 everywhere unless ``enabled``."""
    return dashboard(engine, enabled=enabled, token=token, allowed_hosts=allowed_hosts).wsgi
