"""The examples as users run them (``python -m examples.<app>``), over real HTTP."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.servers import free_port
from tests.support import KEY

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = [
    ("GET", "/whoami", None), ("POST", "/cart/apple", None), ("POST", "/login", {"user": "ann"}),
    ("POST", "/cart/pear", None), ("DELETE", "/cart/apple", None), ("GET", "/cart", None),
    ("GET", "/whoami", None), ("POST", "/logout", None), ("GET", "/cart", None),
]


@contextlib.contextmanager
def example(module: str, **env: str) -> Iterator[str]:
    """The example serving on a free port; its first line of output must name the shop page,
    which must answer with the page."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port)],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        assert select.select([process.stdout], [], [], 30)[0], f"{module} printed nothing"
        banner = process.stdout.readline().strip()  # printed before the server starts
        assert banner.endswith(f" on {base}/"), banner
        assert banner.startswith("sessionkit shop ("), banner
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(base + "/whoami", timeout=1)
                break
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{module} did not start") from None
                time.sleep(0.1)
        page = httpx2.get(base + "/", timeout=10)
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>sessionkit shop</h1>" in page.text
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


def run_script(base: str) -> list[tuple[int, bytes]]:
    with httpx2.Client(base_url=base, timeout=10) as http:
        return [(r.status_code, r.content)
                for r in (http.request(m, p, json=b) for m, p, b in SCRIPT)]


@pytest.mark.parametrize("store", ["memory://", "jwt://"])
def test_both_examples_serve_the_shop_with_byte_identical_bodies(store: str) -> None:
    env = {"SESSIONKIT_STORE": store, "SESSIONKIT_SECRET_KEY": KEY,
           "SESSIONKIT_INSTANCE_ID": "demo-a", "SESSIONKIT_REVOCATION_STORE": "memory://"}
    transcripts = {}
    for module in ("examples.fastapi_app", "examples.flask_app"):
        with example(module, **env) as base:
            transcripts[module] = run_script(base)
    fastapi, flask = transcripts.values()
    assert fastapi == flask
    assert fastapi[5] == (200, b'{"cart":["pear"]}')
    assert fastapi[6][1] == (b'{"instance":"demo-a","session_new":false,"store":"'
                             + store.encode() + b'","user":"ann"}')
    assert fastapi[8] == (200, b'{"cart":[]}')


def test_flask_example_on_redis_and_fastapi_example_share_carts() -> None:
    from tests.stores import REDIS_ENV, flush_redis
    from tests.support import service_url

    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    env = {"SESSIONKIT_STORE": url, "SESSIONKIT_SECRET_KEY": KEY}
    with example("examples.fastapi_app", **env) as fastapi_base, \
            example("examples.flask_app", **env) as flask_base:
        with httpx2.Client(base_url=fastapi_base, timeout=10) as fastapi:
            fastapi.post("/cart/apple")
            cookie = fastapi.cookies["session"]
        with httpx2.Client(base_url=flask_base, timeout=10,
                           cookies={"session": cookie}) as flask:
            assert flask.post("/cart/pear").json() == {"cart": ["apple", "pear"]}
            assert flask.get("/whoami").json()["store"] == url
