"""The dashboard page in Chromium: the token opened in the URL's fragment never reaches the
server, leaves the address bar, survives a reload in that tab, and values that look like
markup are drawn as text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from examples.cluster import spare_ports
from examples.demo_cluster import dashboard_link, serve
from sessionkit.dashboard import Dashboard, cluster_snapshot

TOKEN = "browser-token-0123456789abcdef"
HOSTILE = '<img src=x onerror="window.pwned=1">'
WAIT_MS = 15_000


@pytest.fixture
def served() -> Iterator[tuple[str, list[str]]]:
    """A dashboard with a token and a hostile instance name; yields its link and every
    request line the server saw (what an access log would hold)."""
    seen: list[str] = []
    dashboard = Dashboard(lambda: cluster_snapshot([{"instance": HOSTILE, "up": True,
                                                     "mode": HOSTILE, "lookups": {}}]),
                          enabled=True, token=TOKEN)

    def logged(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
                    f"?{environ.get('QUERY_STRING', '')}")
        return dashboard.wsgi(environ, start_response)

    with serve(logged, spare_ports(1)[0]) as url:
        yield dashboard_link(url, TOKEN), seen


def ready(page: Any) -> None:
    """A selector, not wait_for_function: that evaluates a string, which the page's
    Content-Security-Policy (its own script only, by hash) rightly refuses."""
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=WAIT_MS)


def test_the_token_never_reaches_a_log_and_leaves_the_address_bar(
        browser: Any, served: tuple[str, list[str]]) -> None:
    link, seen = served
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(link)
        ready(page)
        assert "token" not in page.url and "#" not in page.url
        page.reload()  # the tab keeps it
        ready(page)
        assert page.locator("#error").inner_text() == ""
        other = context.new_page()  # another tab was never given it
        other.goto(link.split("#")[0])
        from playwright.sync_api import expect

        expect(other.locator("#error")).to_contain_text("wants its token", timeout=WAIT_MS)
    finally:
        context.close()
    assert seen and all(TOKEN not in line for line in seen)
    assert any(line.startswith("GET /snapshot.json") for line in seen)


def test_values_that_look_like_markup_are_drawn_as_text(
        browser: Any, served: tuple[str, list[str]]) -> None:
    link, _ = served
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(link)
        ready(page)
        row = page.locator("#instances tr").first
        assert row.locator("td").first.inner_text() == HOSTILE
        assert page.locator("#instances img").count() == 0
        assert page.evaluate("window.pwned === undefined")
    finally:
        context.close()
