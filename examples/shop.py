"""The shop's logic, written once against the sessionkit Session API.

Both example apps are thin HTTP shells over these functions, which is the point: the session
code of an app does not depend on the framework or on where sessions are kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

from examples import shop_page
from sessionkit import Session, SessionEngine

Reply = tuple[int, dict[str, Any]]
_NAME_RE = re.compile(r"^[\w.@+-]{1,64}$")
MAX_CART_ITEMS = 100
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(payload: dict[str, Any]) -> bytes:
    """One JSON encoding for both apps, so their bodies are byte-identical."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def login(session: Session, body: Any) -> Reply:
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, str) or not _NAME_RE.match(user):
        return 400, {"error": "body must be {\"user\": <1-64 letters, digits or ._@+->}"}
    session.regenerate()  # a new id at login: a planted (fixated) id is worthless
    session["user"] = user
    session.user_id = user
    return 200, {"user": user}


def logout(session: Session) -> Reply:
    """Log this browser out. For ``?everywhere=1`` the app first destroys every session of
    ``session.user_id`` with ``store.delete_user_sessions`` (sync or async)."""
    user = session.get("user")
    session.invalidate()
    return 200, {"logged_out": user}


def wants_everywhere(query_value: str | None) -> bool:
    return (query_value or "").lower() in ("1", "true", "yes")


def add_item(session: Session, item: str) -> Reply:
    if not _NAME_RE.match(item):
        return 400, {"error": "item names are 1-64 letters, digits or ._@+-"}
    cart = session.setdefault("cart", [])
    if len(cart) >= MAX_CART_ITEMS:
        return 409, {"error": f"the cart holds at most {MAX_CART_ITEMS} items"}
    cart.append(item)  # an in-place change: sessionkit notices it without help
    return 200, {"cart": cart}


def remove_item(session: Session, item: str) -> Reply:
    cart = session.get("cart", [])
    if item not in cart:
        return 404, {"error": f"{item} is not in the cart"}
    cart.remove(item)
    return 200, {"cart": cart}


def show_cart(session: Session) -> Reply:
    return 200, {"cart": session.get("cart", [])}


def whoami(session: Session, engine: SessionEngine) -> Reply:
    return 200, {
        "user": session.get("user"),
        "instance": engine.instance_id,
        "store": engine.config.store_name,
        "session_new": session.is_new,
    }


def page(session: Session, engine: SessionEngine) -> str:
    """The shop page, rendered with this session's state (what ``/whoami`` and ``/cart`` say),
    so the first HTML already shows the user, the cart and the serving instance."""
    user = session.get("user")
    cart = session.get("cart", [])
    return shop_page.render(
        user=user if isinstance(user, str) else None,
        cart=[str(item) for item in cart] if isinstance(cart, list) else [],
        instance=engine.instance_id,
        store=engine.config.store_name,
    )


PAGE_HEADERS = {"Cache-Control": "no-store"}  # the page shows one session's state


def dashboard_settings() -> dict[str, Any]:
    """The live dashboard at ``/_sessionkit/``: on with ``SHOP_DASHBOARD=1``, behind
    ``SHOP_DASHBOARD_TOKEN`` when that is set."""
    import os

    return {"enabled": os.environ.get("SHOP_DASHBOARD") == "1",
            "token": os.environ.get("SHOP_DASHBOARD_TOKEN") or None}


DASHBOARD_PATH = "/_sessionkit"


def serve_args(prog: str, default_port: int) -> Any:
    """``--host``/``--port`` flags, defaulting to ``HOST``/``PORT`` from the environment."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog=prog, description="sessionkit example shop")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", default_port)))
    return parser.parse_args()
