"""The shop's logic, written once against the sessionkit Session API.

Both example apps are thin HTTP shells over these functions, which is the point: the session
code of an app does not depend on the framework or on where sessions are kept.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from examples import devices_page, shop_page
from sessionkit import Session, SessionEngine
from sessionkit.devices import UserSession

Reply = tuple[int, dict[str, Any]]
_NAME_RE = re.compile(r"^[\w.@+-]{1,64}$")
MAX_CART_ITEMS = 100
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: "Keep me signed in": the session lasts up to this long, cookie included.
REMEMBER_FOR = timedelta(days=30)
#: Not kept signed in: the cookie ends with the browser, the session after an idle hour.
FORGET_AFTER = timedelta(hours=1)
#: Pages that need a recent password ask again after this long.
FRESH_FOR = timedelta(minutes=5)


def render(payload: dict[str, Any]) -> bytes:
    """One JSON encoding for both apps, so their bodies are byte-identical."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def login(session: Session, body: Any, user_agent: str | None = None) -> Reply:
    """Log in as ``{"user": name}``; ``"remember": true`` keeps the browser signed in for
    ``REMEMBER_FOR``, ``false`` only until it closes (absent: as configured)."""
    user = body.get("user") if isinstance(body, dict) else None
    remember = body.get("remember") if isinstance(body, dict) else None
    if not isinstance(user, str) or not _NAME_RE.match(user):
        return 400, {"error": "body must be {\"user\": <1-64 letters, digits or ._@+->}"}
    if remember is not None and not isinstance(remember, bool):
        return 400, {"error": "remember must be true or false"}
    session.regenerate()  # a new id at login: a planted (fixated) id is worthless
    session["user"] = user
    session.user_id = user
    session.mark_authenticated()  # the user just proved who they are
    session.description = device_name(user_agent)  # what the devices page shows
    if remember is True:
        session.set_expiry(absolute=REMEMBER_FOR)
    elif remember is False:
        session.set_expiry(idle=FORGET_AFTER, browser_session=True)
    return 200, {"user": user}


def device_name(user_agent: str | None) -> str:
    """A browser and system name from a ``User-Agent`` header, coarse on purpose (a devices
    page needs no more, and nothing else about the client is kept)."""
    agent = (user_agent or "")[:512]
    browser = next((name for token, name in _BROWSERS if token in agent), "Unknown browser")
    system = next((name for token, name in _SYSTEMS if token in agent), None)
    return f"{browser} on {system}" if system else browser


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"),
             ("python-httpx", "httpx"), ("testclient", "Test client"),
             ("Werkzeug", "Test client"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


# --- the signed-in user's sessions ("your devices") ------------------------------------------
SIGN_IN_FIRST: Reply = (401, {"error": "log in first"})


def devices(session: Session, listed: list[UserSession]) -> Reply:
    """The user's sessions (``store.user_sessions``), this one marked ``current``."""
    current = session.handle
    return 200, {"sessions": [{**item.to_dict(), "current": item.handle == current}
                              for item in listed]}


def revoke_handle(body: Any) -> str | None:
    """The handle a revoke request names, or None when it names none."""
    handle = body.get("handle") if isinstance(body, dict) else None
    return handle if isinstance(handle, str) else None


def revoked(ended: bool) -> Reply:
    if not ended:
        return 404, {"error": "no such session of yours (ended already?)"}
    return 200, {"revoked": True}


def revoke_others(session: Session) -> Reply:
    """Sign out every other device; done when the response is saved."""
    session.revoke_others()
    return 200, {"revoked_others": True}


def devices_html(session: Session, listed: list[UserSession] | None, error: str | None,
                 engine: SessionEngine) -> str:
    user = session.get("user")
    return devices_page.render(
        user=user if isinstance(user, str) else None, sessions=listed or [],
        current=session.handle, instance=engine.instance_id, error=error)


# --- fresh logins --------------------------------------------------------------------------
def reauth(session: Session, body: Any) -> Reply:
    """The user proves who they are again (a real app checks a password here)."""
    user = body.get("user") if isinstance(body, dict) else None
    if session.user_id is None:
        return SIGN_IN_FIRST
    if user != session.user_id:
        return 403, {"error": "that is not you"}
    session.mark_authenticated()
    return 200, {"authenticated_at": _iso(session)}


def account(session: Session) -> Reply:
    """A page that needs a recent password: it asks again after ``FRESH_FOR``."""
    if session.user_id is None:
        return SIGN_IN_FIRST
    if not session.authenticated_within(FRESH_FOR):
        return 403, {"error": "confirm it is you", "reauth": "reauth",
                     "authenticated_at": _iso(session)}
    return 200, {"user": session.user_id, "authenticated_at": _iso(session)}


def _iso(session: Session) -> str | None:
    at = session.authenticated_at
    return at.isoformat() if at is not None else None


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
