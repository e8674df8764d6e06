"""The shop on FastAPI. ``SESSIONKIT_STORE`` (default ``memory://``) picks where sessions live."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse

from examples import shop
from sessionkit import ConfigError, SessionConfig, SessionEngine, dashboard
from sessionkit.asgi import SessionMiddleware
from sessionkit.fastapi import SessionDep


def create_app(config: SessionConfig | None = None) -> FastAPI:
    engine = SessionEngine(config or SessionConfig.from_env())
    app = FastAPI(title="sessionkit shop")
    app.add_middleware(SessionMiddleware, engine=engine)
    app.state.sessionkit = engine
    # added after the session middleware, so it runs first: the dashboard's polls load no session
    app.add_middleware(dashboard.AsgiMount, path=shop.DASHBOARD_PATH,
                       dashboard=dashboard.asgi_app(engine, **shop.dashboard_settings()))

    def reply(result: shop.Reply) -> Response:
        status, payload = result
        return Response(shop.render(payload), status, media_type="application/json")

    @app.get("/")
    def page(session: SessionDep) -> HTMLResponse:
        return HTMLResponse(shop.page(session, engine), headers=shop.PAGE_HEADERS)

    @app.post("/login")
    async def login(request: Request, session: SessionDep) -> Response:
        body: Any
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        return reply(shop.login(session, body))

    @app.post("/logout")
    async def logout(request: Request, session: SessionDep) -> Response:
        if shop.wants_everywhere(request.query_params.get("everywhere")) and session.user_id:
            try:
                await engine.store.adelete_user_sessions(session.user_id)
            except ConfigError as exc:  # jwt:// without a revocation store
                return reply((501, {"error": str(exc)}))
        return reply(shop.logout(session))

    @app.post("/cart/{item}")
    def add_item(item: str, session: SessionDep) -> Response:
        return reply(shop.add_item(session, item))

    @app.delete("/cart/{item}")
    def remove_item(item: str, session: SessionDep) -> Response:
        return reply(shop.remove_item(session, item))

    @app.get("/cart")
    def show_cart(session: SessionDep) -> Response:
        return reply(shop.show_cart(session))

    @app.get("/whoami")
    def whoami(session: SessionDep) -> Response:
        return reply(shop.whoami(session, engine))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(engine.events.prometheus_text(), media_type=shop.METRICS_TYPE)

    return app
