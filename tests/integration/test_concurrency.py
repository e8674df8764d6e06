"""Concurrent requests on one session through real servers: no update is lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from tests.apps import make
from tests.servers import serve_asgi, serve_wsgi
from tests.support import KEY

CONCURRENT = 50


@pytest.mark.parametrize("kind", ["flask", "fastapi", "wsgi"])
def test_concurrent_requests_adding_distinct_keys_all_persist(kind: str) -> None:
    app = make(kind, secret_key=KEY, store="memory://")
    serve = serve_asgi if kind == "fastapi" else serve_wsgi
    with serve(app) as base, httpx2.Client(base_url=base, timeout=10) as http:
        first = http.post("/set/init")
        cookie = first.headers["set-cookie"].split(";")[0]

        def add(n: int) -> int:
            with httpx2.Client(base_url=base, timeout=10) as one:
                return one.post(f"/set/k{n:02d}", headers={"Cookie": cookie}).status_code

        with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
            statuses = list(pool.map(add, range(CONCURRENT)))
        assert statuses == [200] * CONCURRENT
        final = http.get("/get", headers={"Cookie": cookie}).json()
    assert sorted(final) == sorted(["init", *(f"k{n:02d}" for n in range(CONCURRENT))])
