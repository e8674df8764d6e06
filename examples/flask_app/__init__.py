"""The shop on Flask. ``SESSIONKIT_STORE`` (default ``memory://``) picks where sessions live."""

from __future__ import annotations

from flask import Flask, Response, request, session
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from examples import shop
from sessionkit import ConfigError, Session, SessionConfig, dashboard
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
        return reply(shop.login(current(), request.get_json(force=True, silent=True)))

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
