"""The shop's "your devices" page in Chromium: one user signed in on a laptop and a phone (two
browsers with their own cookies and user agents); the laptop lists both, signs the phone out
with the page's button, and the phone finds itself logged out while the laptop is not.

Shared modes run three instances behind HAProxy (the two browsers may well be served by
different instances); local mode runs one instance, where its sessions live.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from examples.cluster import Cluster, app_command, spare_ports, spawn, wait_until_serving
from tests.e2e.lb import require_binary
from tests.stores import POSTGRES_ENV, REDIS_ENV, clear_sql, flush_redis
from tests.support import service_url

WAIT_MS = 15_000
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/126.0 Mobile Safari/537.36")


def _redis() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


def _postgres() -> str:
    url = service_url(POSTGRES_ENV, "PostgreSQL")
    clear_sql(url)
    return url


@dataclass(frozen=True)
class Mode:
    framework: str
    #: Environment of the instances (values may be computed when the test starts).
    env: tuple[tuple[str, Any], ...]
    #: Three instances behind HAProxy (shared modes), else one instance.
    balanced: bool = True


MODES = {
    "local": Mode("flask", (("SESSIONKIT_STORE", lambda: "memory://"),), balanced=False),
    "local-fastapi": Mode("fastapi", (("SESSIONKIT_STORE", lambda: "memory://"),),
                          balanced=False),
    "redis": Mode("fastapi", (("SESSIONKIT_STORE", _redis),)),
    "jwt": Mode("flask", (("SESSIONKIT_STORE", lambda: "jwt://"),
                          ("SESSIONKIT_REVOCATION_STORE", _redis))),
    "jwt-encrypted": Mode("fastapi", (("SESSIONKIT_STORE", lambda: "jwt://?encrypted=true"),
                                      ("SESSIONKIT_REVOCATION_STORE", _redis))),
    "hybrid": Mode("fastapi", (("SESSIONKIT_STORE", _redis), ("SESSIONKIT_NEAR_CACHE", "1"))),
    "postgresql": Mode("flask", (("SESSIONKIT_STORE", _postgres),)),
}


@contextlib.contextmanager
def shop(mode: Mode, directory: Path) -> Iterator[str]:
    """The example shop as the mode runs it; yields the URL browsers use."""
    env = {name: value() if callable(value) else value for name, value in mode.env}
    if mode.balanced:
        require_binary("haproxy")
        started = Cluster("haproxy", mode.framework, directory, env)
        try:
            started.start()
            yield started.url
        finally:
            started.close()
        return
    (port,) = spare_ports(1)
    env.update(TMPDIR=str(directory), SESSIONKIT_INSTANCE_ID="solo",
               SESSIONKIT_SECRET_KEY=secrets.token_urlsafe(32))
    process = spawn(f"{mode.framework}-solo", app_command(mode.framework, port), directory, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url + "/whoami")
        yield url
    finally:
        process.stop()


def ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=WAIT_MS)


def log_in(page: Any, url: str, user: str, remember: bool) -> None:
    from playwright.sync_api import expect

    page.goto(url + "/")
    ready(page)
    page.fill("#user", user)
    if remember:
        page.check("#remember")
    page.click("#login")
    expect(page.locator("#who")).to_have_text(f"Logged in as {user}.", timeout=WAIT_MS)


@pytest.mark.parametrize("name", list(MODES))
def test_sign_a_device_out_from_another(name: str, browser: Any, artifacts: Path,
                                        tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with shop(MODES[name], tmp_path) as url:
        laptop_context = browser.new_context(user_agent=LAPTOP)
        phone_context = browser.new_context(user_agent=PHONE)
        try:
            laptop, phone = laptop_context.new_page(), phone_context.new_page()
            log_in(laptop, url, "alice", remember=True)
            log_in(phone, url, "alice", remember=False)
            phone.click("[data-add=apple]")
            ready(phone)

            laptop.click("#devices-link")
            ready(laptop)
            rows = laptop.locator("#devices li")
            expect(rows).to_have_count(2, timeout=WAIT_MS)
            expect(laptop.locator("li[data-current] [data-field=description]")).to_have_text(
                "Firefox on Linux")
            other = laptop.locator("li:not([data-current])")
            expect(other.locator("[data-field=description]")).to_have_text("Chrome on Android")
            laptop.screenshot(path=str(artifacts / f"devices-{name}-1-before.png"),
                              full_page=True)

            other.locator("button[data-revoke]").click()
            ready(laptop)
            expect(rows).to_have_count(1, timeout=WAIT_MS)
            expect(laptop.locator("li[data-current]")).to_have_count(1)
            expect(laptop.locator("#revoke-others")).to_have_count(0)  # nobody else is left
            laptop.screenshot(path=str(artifacts / f"devices-{name}-2-after.png"),
                              full_page=True)

            phone.reload()
            ready(phone)
            expect(phone.locator("#who")).to_have_text("Not logged in.", timeout=WAIT_MS)
            laptop.goto(url + "/")
            ready(laptop)
            expect(laptop.locator("#who")).to_have_text("Logged in as alice.")
            # The cookies: remembered on the laptop, a browser-session cookie on the phone.
            kept = {c["name"]: c for c in laptop_context.cookies()}["session"]
            assert kept["expires"] > 0 and kept["httpOnly"] is True
        finally:
            laptop_context.close()
            phone_context.close()


def test_sign_out_every_other_device(browser: Any, artifacts: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with shop(MODES["redis"], tmp_path) as url:
        contexts = [browser.new_context(user_agent=agent) for agent in (LAPTOP, PHONE, PHONE)]
        try:
            pages = [context.new_page() for context in contexts]
            for page in pages:
                log_in(page, url, "bob", remember=False)
            pages[0].goto(url + "/devices")
            ready(pages[0])
            expect(pages[0].locator("#devices li")).to_have_count(3, timeout=WAIT_MS)
            pages[0].click("#revoke-others")
            ready(pages[0])
            expect(pages[0].locator("#devices li")).to_have_count(1, timeout=WAIT_MS)
            pages[0].screenshot(path=str(artifacts / "devices-others-signed-out.png"),
                                full_page=True)
            for page in pages[1:]:
                page.reload()
                ready(page)
                expect(page.locator("#who")).to_have_text("Not logged in.", timeout=WAIT_MS)
        finally:
            for context in contexts:
                context.close()
