"""The shop and the dashboard in a real browser, against three instances behind HAProxy.

Per mode: log in, add items, reload, stop the instance that serves you from the dashboard,
go on shopping. With a shared store (Redis) or client-side sessions (jwt) the cart survives;
in local mode the page says the session was lost and the dashboard counts the affinity miss.
The session cookie is HttpOnly: page scripts never see it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from examples.cluster import Cluster, spare_ports
from examples.demo_cluster import Aggregator, control_panel, dashboard_link, serve
from tests.e2e.lb import require_binary
from tests.stores import REDIS_ENV, flush_redis
from tests.support import service_url

WAIT_MS = 15_000
AT_LEAST_ONE = re.compile(r"^[1-9][0-9]*$")
AT_LEAST_THREE = re.compile(r"^([3-9]|[1-9][0-9]+)$")


def _redis() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


@dataclass(frozen=True)
class Mode:
    store: Callable[[], str]
    #: Whether a cart outlives the instance that served it.
    cart_survives: bool
    #: More settings for the instances (environment variables).
    env: tuple[tuple[str, str], ...] = ()


#: Mode name -> where the instances keep sessions. A new mode is one more entry.
MODES = {
    "local": Mode(lambda: "memory://", cart_survives=False),
    "redis": Mode(_redis, cart_survives=True),
    "jwt": Mode(lambda: "jwt://", cart_survives=True),
    "hybrid": Mode(_redis, cart_survives=True, env=(("SESSIONKIT_NEAR_CACHE", "1"),)),
}


@contextlib.contextmanager
def demo(store: str, directory: Path, env: tuple[tuple[str, str], ...] = (),
         ) -> Iterator[tuple[Cluster, str]]:
    """What ``demo_cluster`` runs: the FastAPI shop x3 behind HAProxy, and the aggregating
    dashboard with its stop buttons; yields the cluster and the link the demo prints."""
    require_binary("haproxy")
    token = secrets.token_urlsafe(24)
    started = Cluster("haproxy", "fastapi", directory, env={
        "SESSIONKIT_STORE": store, "SHOP_DASHBOARD": "1", "SHOP_DASHBOARD_TOKEN": token,
        **dict(env)})
    try:
        started.start()
        aggregator = Aggregator(started, token)
        with serve(control_panel(aggregator, token).wsgi, spare_ports(1)[0]) as dashboard_url:
            yield started, dashboard_link(dashboard_url, token)
    finally:
        started.close()


def ready(page: Any) -> None:
    # A selector, not wait_for_function: that evaluates a string, which the dashboard's
    # Content-Security-Policy (no 'unsafe-eval') rightly refuses.
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=WAIT_MS)


def cart(page: Any) -> list[str]:
    ready(page)
    items: list[str] = page.locator("#cart li button[data-remove]").evaluate_all(
        "buttons => buttons.map(b => b.dataset.remove)")
    return items


@pytest.mark.parametrize("mode", list(MODES))
def test_cart_through_an_instance_failure(mode: str, browser: Any, artifacts: Path,
                                          tmp_path: Path) -> None:
    from playwright.sync_api import expect

    settings = MODES[mode]
    with demo(settings.store(), tmp_path, settings.env) as (started, dashboard_url):
        context = browser.new_context()
        try:
            shop = context.new_page()
            shop.goto(started.url + "/")
            ready(shop)
            shop.fill("#user", "alice")
            shop.click("#login")
            expect(shop.locator("#who")).to_have_text("Logged in as alice.", timeout=WAIT_MS)
            for item in ("apple", "pear"):
                shop.click(f"[data-add={item}]")
                ready(shop)
            assert cart(shop) == ["apple", "pear"]

            shop.reload()
            assert cart(shop) == ["apple", "pear"]
            expect(shop.locator("#who")).to_have_text("Logged in as alice.")
            served = shop.locator("#instance").inner_text()
            assert served in started.instances
            shop.screenshot(path=str(artifacts / f"{mode}-1-shop-before.png"), full_page=True)

            # HttpOnly: the browser holds the cookie, page scripts cannot read it
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["session"]["httpOnly"] is True
            assert "session=" not in shop.evaluate("document.cookie")

            panel = context.new_page()
            panel.goto(dashboard_url)
            ready(panel)
            assert "token" not in panel.url  # dropped from the address bar once read
            row = panel.locator(f'tr[data-instance="{served}"]')
            expect(row.locator('[data-field="state"]')).to_have_text("up")
            panel.click(f'button[data-stop="{served}"]')
            expect(row.locator('[data-field="state"]')).to_have_text("stopped", timeout=WAIT_MS)
            assert not started.instances[served].alive()

            shop.bring_to_front()
            shop.click("[data-add=plum]")
            after = cart(shop)
            now = shop.locator("#instance").inner_text()
            assert now != served and now in started.instances
            lost = shop.locator("#lost")
            if settings.cart_survives:
                assert after == ["apple", "pear", "plum"]
                expect(shop.locator("#who")).to_have_text("Logged in as alice.")
                expect(lost).to_be_hidden()
            else:
                assert after == ["plum"]
                expect(shop.locator("#who")).to_have_text("Not logged in.")
                expect(lost).to_be_visible()
                expect(lost).to_contain_text(f"logged in as alice and your cart held apple, "
                                             f"pear on instance {served}")
            shop.screenshot(path=str(artifacts / f"{mode}-2-shop-after.png"), full_page=True)

            panel.bring_to_front()
            misses = panel.locator('[data-field="total_affinity_miss"]')
            if settings.cart_survives:
                expect(misses).to_have_text("0", timeout=WAIT_MS)
            else:  # the plum request's cookie named the stopped instance
                expect(misses).to_have_text(AT_LEAST_ONE, timeout=WAIT_MS)
                expect(panel.locator(f'tr[data-instance="{now}"] [data-field="affinity_miss"]')
                       ).to_have_text(AT_LEAST_ONE)
            expect(panel.locator('[data-field="total_hit"]')).to_have_text(AT_LEAST_THREE)
            sizes = panel.locator('[data-field="cookie_bytes"]').all_inner_texts()
            assert any(re.fullmatch(r"\d+(\.0)? / \d+(\.0)? / \d+(\.0)?", s) for s in sizes), sizes
            panel.screenshot(path=str(artifacts / f"{mode}-3-dashboard.png"), full_page=True)
        finally:
            context.close()
