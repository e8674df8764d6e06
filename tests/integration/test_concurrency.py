"""Concurrent requests on one session through real servers: no update is lost, on every store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.apps import make
from tests.servers import serve_asgi, serve_wsgi
from tests.stores import SERVER_STORES, iter_params, store_url_for
from tests.support import KEY

CONCURRENT = 50


@pytest.fixture(params=list(iter_params(SERVER_STORES)))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request, tmp_path, request.param)


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_concurrent_requests_adding_distinct_keys_all_persist(kind: str, store_url: str) -> None:
    app = make(kind, secret_key=KEY, store=store_url)
    serve = serve_asgi if kind == "fastapi" else serve_wsgi
    with serve(app) as base, httpx2.Client(base_url=base, timeout=30) as http:
        first = http.post("/set/init")
        cookie = first.headers["set-cookie"].split(";")[0]

        def add(n: int) -> int:
            with httpx2.Client(base_url=base, timeout=30) as one:
                return one.post(f"/set/k{n:02d}", headers={"Cookie": cookie}).status_code

        with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
            statuses = list(pool.map(add, range(CONCURRENT)))
        assert statuses == [200] * CONCURRENT
        final = http.get("/get", headers={"Cookie": cookie}).json()
    assert sorted(final) == sorted(["init", *(f"k{n:02d}" for n in range(CONCURRENT))])


def test_bare_wsgi_middleware_under_a_threaded_server() -> None:
    app = make("wsgi", secret_key=KEY, store="memory://")
    with serve_wsgi(app) as base, httpx2.Client(base_url=base, timeout=30) as http:
        cookie = http.post("/set/init").headers["set-cookie"].split(";")[0]
        with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
            list(pool.map(lambda n: httpx2.post(f"{base}/set/w{n:02d}",
                                                headers={"Cookie": cookie}), range(CONCURRENT)))
        assert len(http.get("/get", headers={"Cookie": cookie}).json()) == CONCURRENT + 1
