"""Races through real servers: a logout or a ``regenerate()`` while a slow request on the same
session is in flight. The documented rule: a write never resurrects a session that a
concurrent request destroyed — the slow request's changes are dropped (and logged), the old
id stays dead, and after a regenerate the new id holds the data as it was at login."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sessionkit import SessionConfig
from tests.concurrency.served import asgi_app, slow_loaded, wsgi_app
from tests.servers import serve_asgi, serve_wsgi
from tests.stores import store_url_for
from tests.support import KEY, deletes_cookie

STORES = ["memory", "sqlite", "redis", "postgresql", "mariadb"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request, tmp_path, request.param)


@pytest.fixture(params=["flask", "fastapi"])
def base(request: pytest.FixtureRequest, store: str) -> Any:
    config = SessionConfig(store=store, secret_key=KEY)
    if request.param == "flask":
        with serve_wsgi(wsgi_app(config=config)) as url:
            yield url
    else:
        with serve_asgi(asgi_app(config=config)) as url:
            yield url


def _cookie(response: httpx2.Response) -> str:
    return response.headers["set-cookie"].split(";")[0]


def _in_flight(base: str, cookie: str) -> tuple[threading.Thread, list[httpx2.Response]]:
    """A slow request on ``cookie``, started and given time to load the session."""
    done: list[httpx2.Response] = []

    def slow() -> None:
        done.append(httpx2.post(f"{base}/slow/late", headers={"Cookie": cookie}, timeout=30))

    slow_loaded.clear()
    thread = threading.Thread(target=slow)
    thread.start()
    assert slow_loaded.wait(timeout=20), "the slow request never started"
    return thread, done


def test_a_logout_racing_a_slow_request_never_brings_the_session_back(
    base: str, caplog: pytest.LogCaptureFixture
) -> None:
    with httpx2.Client(base_url=base, timeout=30) as http:
        cookie = _cookie(http.post("/set/cart"))
        thread, done = _in_flight(base, cookie)
        logout = http.post("/logout", headers={"Cookie": cookie})
        assert logout.status_code == 200 and deletes_cookie(logout.headers["set-cookie"])
        thread.join(timeout=30)
        [slow] = done
        assert slow.status_code == 200
        assert "set-cookie" not in slow.headers  # nothing saved, so nothing to name
        assert "destroyed by another request" in caplog.text  # the drop is logged
        assert http.get("/get", headers={"Cookie": cookie}).json() == {}
        again = http.post("/set/x", headers={"Cookie": cookie})
        assert _cookie(again) != cookie  # a new session, never the old id revived


def test_regenerate_racing_a_request_on_the_old_id(
    base: str, caplog: pytest.LogCaptureFixture
) -> None:
    with httpx2.Client(base_url=base, timeout=30) as http:
        old = _cookie(http.post("/set/cart"))
        thread, done = _in_flight(base, old)
        new = _cookie(http.post("/login", headers={"Cookie": old}))
        assert new != old
        assert http.get("/get", headers={"Cookie": old}).json() == {}  # dead at once
        thread.join(timeout=30)
        [slow] = done
        assert slow.status_code == 200 and "set-cookie" not in slow.headers
        assert "destroyed by another request" in caplog.text
        assert http.get("/get", headers={"Cookie": old}).json() == {}  # and stays dead
        assert http.get("/get", headers={"Cookie": new}).json() == {"cart": True}
