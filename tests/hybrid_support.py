"""Several hybrid-mode instances over one shared store, and a browser that visits any of them.

Each instance is one of the example shop apps (Flask or FastAPI) with its own engine, instance
id and near cache; the browser keeps exactly one session cookie and sends it wherever a test
(or the load balancer it plays) routes the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sessionkit import SessionConfig, SessionEngine
from tests.support import KEY, FakeClock, Reply, ShopClient, engine_of, make_app

MAX_AGE = 30.0
CONNECT_SECONDS = 5.0
#: Clusters alive now: a browser waits after each request until their instances have handled
#: every Redis invalidation it caused, so that tests see a settled state, not a race.
LIVE: list[Instances] = []


@dataclass
class Instances:
    """``count`` instances named a, b, c... over ``store``; ``kill`` replaces one by a fresh
    process-to-be (same id, empty cache), as a crash and restart would."""

    store: str
    clock: FakeClock
    framework: str = "flask"
    count: int = 3
    settings: dict[str, Any] = field(default_factory=dict)
    apps: dict[str, ShopClient] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in "abcdefgh"[: self.count]:
            self.start(name)
        LIVE.append(self)

    def start(self, name: str) -> ShopClient:
        settings = {"near_cache": True, "near_cache_max_age": MAX_AGE, **self.settings}
        config = SessionConfig(store=self.store, secret_key=KEY, instance_id=name,
                               clock=self.clock, **settings)
        self.apps[name] = shop = ShopClient(self.framework, make_app(self.framework, config))
        watcher = self.invalidations(name)
        if watcher is not None:  # Redis: invalidations flow before the first request
            watcher.start()
            deadline = time.monotonic() + CONNECT_SECONDS
            while not watcher.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            assert watcher.connected, "the near cache did not subscribe to Redis invalidations"
        return shop

    def invalidations(self, name: str) -> Any:
        return getattr(engine(self.apps[name]).backend, "invalidations", None)

    def settle(self) -> None:
        for name in self.apps:
            watcher = self.invalidations(name)
            if watcher is not None and watcher.connected:
                assert watcher.barrier(), f"{name} did not handle Redis invalidations in time"

    def kill(self, name: str) -> None:
        engine(self.apps[name]).close()
        self.start(name)

    def close(self) -> None:
        for shop in self.apps.values():
            engine(shop).close()
        if self in LIVE:
            LIVE.remove(self)

    def __getitem__(self, name: str) -> ShopClient:
        return self.apps[name]

    def near(self, name: str) -> dict[str, int]:
        return dict(engine(self.apps[name]).events.near_cache)

    def store_ops(self, name: str) -> int:
        """Store operations instance ``name`` performed so far."""
        return engine(self.apps[name]).events.store_latency.count


def engine(shop: ShopClient) -> SessionEngine:
    found: SessionEngine = engine_of(shop.app)
    return found


@dataclass
class Browser:
    """One browser: a single session cookie, sent to whichever instance serves a request."""

    cookie: str | None = None

    def send(self, shop: ShopClient, method: str, path: str, body: Any = None) -> Reply:
        reply = shop.raw(method, path, cookie=f"session={self.cookie}" if self.cookie else None,
                         body=body)
        for header in reply.set_cookies:
            name, _, rest = header.partition("=")
            if name.strip() != "session":
                continue
            value = rest.split(";", 1)[0]
            deleted = "max-age=0" in header.lower() or not value
            self.cookie = None if deleted else value
        for cluster in LIVE:
            cluster.settle()
        return reply

    @property
    def route(self) -> str | None:
        return self.cookie.rsplit(".", 1)[1] if self.cookie else None

    def cart(self, shop: ShopClient) -> list[str]:
        reply = self.send(shop, "GET", "/cart")
        assert reply.status == 200, reply.body
        cart: list[str] = reply.json["cart"]
        return cart
