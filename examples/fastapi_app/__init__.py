"""The shop on FastAPI. ``SESSIONKIT_STORE`` (default ``memory://``) picks where sessions live."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from examples import shop
from sessionkit import ConfigError, Session, SessionConfig, SessionEngine, dashboard
from sessionkit.asgi import SessionMiddleware
from sessionkit.devices import UserSession
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

    async def json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    @app.post("/login")
    async def login(request: Request, session: SessionDep) -> Response:
        return reply(shop.login(session, await json_body(request),
                                request.headers.get("user-agent")))

    # --- the user's devices: JSON, and the page with its forms ---------------------------
    async def listed(session: Session) -> list[UserSession]:
        assert session.user_id is not None
        return await engine.store.auser_sessions(session.user_id)

    async def revoke(session: Session, handle: str | None) -> shop.Reply:
        if session.user_id is None:
            return shop.SIGN_IN_FIRST
        if handle is None:
            return 400, {"error": "body must be {\"handle\": <a handle from the list>}"}
        try:
            return shop.revoked(await engine.store.arevoke(session.user_id, handle))
        except ConfigError as exc:  # jwt:// without a revocation store
            return 501, {"error": str(exc)}

    def revoke_others(session: Session) -> shop.Reply:
        if session.user_id is None:
            return shop.SIGN_IN_FIRST
        try:
            return shop.revoke_others(session)
        except ConfigError as exc:
            return 501, {"error": str(exc)}

    @app.get("/account/sessions")
    async def sessions(session: SessionDep) -> Response:
        if session.user_id is None:
            return reply(shop.SIGN_IN_FIRST)
        try:
            return reply(shop.devices(session, await listed(session)))
        except ConfigError as exc:
            return reply((501, {"error": str(exc)}))

    @app.post("/account/sessions/revoke")
    async def revoke_one(request: Request, session: SessionDep) -> Response:
        return reply(await revoke(session, shop.revoke_handle(await json_body(request))))

    @app.post("/account/sessions/revoke-others")
    def revoke_the_others(session: SessionDep) -> Response:
        return reply(revoke_others(session))

    @app.get("/devices")
    async def devices(session: SessionDep) -> HTMLResponse:
        found: list[UserSession] | None = None
        error = None
        if session.user_id is not None:
            try:
                found = await listed(session)
            except ConfigError as exc:
                error = str(exc)
        return HTMLResponse(shop.devices_html(session, found, error, engine),
                            headers=shop.PAGE_HEADERS)

    @app.post("/devices/revoke")
    async def devices_revoke(request: Request, session: SessionDep) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        await revoke(session, (form.get("handle") or [None])[0])
        return RedirectResponse("../devices", status_code=303)

    @app.post("/devices/revoke-others")
    def devices_revoke_others(session: SessionDep) -> Response:
        revoke_others(session)
        return RedirectResponse("../devices", status_code=303)

    # --- a page that needs a recent password ------------------------------------------------
    @app.post("/reauth")
    async def reauth(request: Request, session: SessionDep) -> Response:
        return reply(shop.reauth(session, await json_body(request)))

    @app.get("/account")
    def account(session: SessionDep) -> Response:
        return reply(shop.account(session))

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
