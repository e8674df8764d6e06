"""The shop on Flask. ``SESSIONKIT_STORE`` (default ``memory://``) picks where sessions live."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, redirect, request, session
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from examples import shop
from sessionkit import ConfigError, Session, SessionConfig, dashboard
from sessionkit.devices import UserSession
from sessionkit.flask import SessionKit


def create_app(config: SessionConfig | None = None) -> Flask:
    app = Flask(__name__)
    engine = SessionKit(app, config or SessionConfig.from_env()).engine
    # outside Flask (and its session handling): the dashboard's polls load no session
    panel = dashboard.wsgi_app(engine, **shop.dashboard_settings())
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {shop.DASHBOARD_PATH: panel})

    def reply(result: shop.Reply) -> Response:
        status, payload = result
        return Response(shop.render(payload), status, mimetype="application/json")

    def current() -> Session:
        return session  # type: ignore[return-value]  # flask.session is a sessionkit Session

    @app.get("/")
    def page() -> Response:
        return Response(shop.page(current(), engine), mimetype="text/html",
                        headers=shop.PAGE_HEADERS)

    @app.post("/login")
    def login() -> Response:
        return reply(shop.login(current(), request.get_json(force=True, silent=True),
                                request.headers.get("User-Agent")))

    # --- the user's devices: JSON, and the page with its forms ---------------------------
    def listed() -> list[UserSession]:
        return engine.store.user_sessions(current().user_id or "")

    def revoke(handle: str | None) -> shop.Reply:
        user = current().user_id
        if user is None:
            return shop.SIGN_IN_FIRST
        if handle is None:
            return 400, {"error": "body must be {\"handle\": <a handle from the list>}"}
        try:
            return shop.revoked(engine.store.revoke(user, handle))
        except ConfigError as exc:  # jwt:// without a revocation store
            return 501, {"error": str(exc)}

    def revoke_others() -> shop.Reply:
        if current().user_id is None:
            return shop.SIGN_IN_FIRST
        try:
            return shop.revoke_others(current())
        except ConfigError as exc:
            return 501, {"error": str(exc)}

    @app.get("/account/sessions")
    def sessions() -> Response:
        if current().user_id is None:
            return reply(shop.SIGN_IN_FIRST)
        try:
            return reply(shop.devices(current(), listed()))
        except ConfigError as exc:
            return reply((501, {"error": str(exc)}))

    @app.post("/account/sessions/revoke")
    def revoke_one() -> Response:
        return reply(revoke(shop.revoke_handle(request.get_json(force=True, silent=True))))

    @app.post("/account/sessions/revoke-others")
    def revoke_the_others() -> Response:
        return reply(revoke_others())

    @app.get("/devices")
    def devices() -> Response:
        found: list[UserSession] | None = None
        error = None
        if current().user_id is not None:
            try:
                found = listed()
            except ConfigError as exc:
                error = str(exc)
        return Response(shop.devices_html(current(), found, error, engine),
                        mimetype="text/html", headers=shop.PAGE_HEADERS)

    @app.post("/devices/revoke")
    def devices_revoke() -> Any:
        revoke(request.form.get("handle"))
        return redirect("../devices", code=303)

    @app.post("/devices/revoke-others")
    def devices_revoke_others() -> Any:
        revoke_others()
        return redirect("../devices", code=303)

    # --- a page that needs a recent password ------------------------------------------------
    @app.post("/reauth")
    def reauth() -> Response:
        return reply(shop.reauth(current(), request.get_json(force=True, silent=True)))

    @app.get("/account")
    def account() -> Response:
        return reply(shop.account(current()))

    @app.post("/logout")
    def logout() -> Response:
        if shop.wants_everywhere(request.args.get("everywhere")) and current().user_id:
            try:
                engine.store.delete_user_sessions(current().user_id or "")
            except ConfigError as exc:  # jwt:// without a revocation store
                return reply((501, {"error": str(exc)}))
        return reply(shop.logout(current()))

    @app.post("/cart/<item>")
    def add_item(item: str) -> Response:
        return reply(shop.add_item(current(), item))

    @app.delete("/cart/<item>")
    def remove_item(item: str) -> Response:
        return reply(shop.remove_item(current(), item))

    @app.get("/cart")
    def show_cart() -> Response:
        return reply(shop.show_cart(current()))

    @app.get("/whoami")
    def whoami() -> Response:
        return reply(shop.whoami(current(), engine))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(engine.events.prometheus_text(), content_type=shop.METRICS_TYPE)

    return app
