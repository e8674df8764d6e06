"""jwt:// against Starlette's own SessionMiddleware (a signed cookie too): per-request cost of
reading and of changing a cart, and the cookie size as the cart grows; and what encrypting the
cookie (jwt://?encrypted=true) adds to both. Run:

    python bench/jwt_cost.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import asgi_runner, measure

KEY = "bench-secret-key-0123456789-abcdefghijklmnop"


def app(kind: str) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sessionkit.asgi import SessionMiddleware

    async def cart(request: Request) -> JSONResponse:
        return JSONResponse({"n": len(request.session.get("cart", []))})

    async def add(request: Request) -> JSONResponse:
        items = request.session.setdefault("cart", [])
        items.append(request.path_params["item"])
        request.session["cart"] = items  # Starlette needs the assignment to notice
        return JSONResponse({"n": len(items)})

    result = Starlette(routes=[Route("/cart", cart),
                               Route("/cart/{item}", add, methods=["POST"])])
    if kind == "starlette":
        result.add_middleware(StarletteSessions, secret_key=KEY)
    else:
        store = "jwt://?encrypted=true" if kind == "encrypted" else "jwt://"
        result.add_middleware(SessionMiddleware, store=store, secret_key=KEY)
    return result


def cookie_with(kind: str, items: int) -> str:
    from starlette.testclient import TestClient

    client = TestClient(app(kind))
    for n in range(items):
        client.post(f"/cart/sku-{n:05d}")
    return f"session={client.cookies['session']}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print("cookie value bytes by cart size (sessionkit jwt://, encrypted, Starlette's)")
    for items in (1, 10, 50):
        ours, sealed = cookie_with("sessionkit", items), cookie_with("encrypted", items)
        theirs = cookie_with("starlette", items)
        print(f"  {items:>3} items: jwt:// {len(ours) - 8:>5}   encrypted {len(sealed) - 8:>5}"
              f"   starlette {len(theirs) - 8:>5}")
    print(f"\n{'request':<22} {'sessionkit µs':>14} {'encrypted µs':>13} {'starlette µs':>13} "
          f"{'speed ratio':>12}")
    for label, method, path in (("read 10-item cart", "GET", "/cart"),
                                ("add to 10-item cart", "POST", "/cart/sku-99999")):
        timings = {}
        for kind in ("sessionkit", "encrypted", "starlette"):
            runner = asgi_runner(app(kind), path, cookie_with(kind, 10), method)
            timings[kind] = measure(runner, args.seconds, True)
        ratio = timings["starlette"] / timings["sessionkit"]
        print(f"{label:<22} {timings['sessionkit']:>14.1f} {timings['encrypted']:>13.1f} "
              f"{timings['starlette']:>13.1f} {ratio:>11.2f}x")


if __name__ == "__main__":
    main()
