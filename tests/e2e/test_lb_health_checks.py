"""The generated load-balancer configs in front of an app that is not the example shop: the
test app (no ``/whoami``, no ``/``), three instances on real HTTP servers, behind real HAProxy
and nginx. The default health check needs nothing from the app, so every instance stays in
rotation; a health path of the app's own is checked for real (a path the app does not have
takes every instance out)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from examples.cluster import lb_command, spare_ports, spawn
from sessionkit import deploy
from sessionkit.deploy.nginx import render_nginx
from tests.apps import make
from tests.e2e.lb import require_binary
from tests.servers import serve_asgi, serve_wsgi
from tests.support import FRAMEWORKS, KEY

#: Longer than HAProxy's checks take to mark a failing server down (2 checks, 1 s apart).
WATCH_SECONDS = 4.0
NAMES = ("a", "b", "c")


@contextlib.contextmanager
def instances(kind: str) -> Iterator[dict[str, str]]:
    """Three instances of the test app, each with its own instance id."""
    serve = serve_asgi if kind == "fastapi" else serve_wsgi
    with contextlib.ExitStack() as stack:
        found = {}
        for name in NAMES:
            app = make(kind, secret_key=KEY, store="memory://", instance_id=name)
            found[name] = stack.enter_context(serve(app)).removeprefix("http://")
        yield found


@contextlib.contextmanager
def balancer(lb: str, config: str, directory: Path, port: int) -> Iterator[str]:
    require_binary(lb)
    runtime = directory / f"{lb}-runtime"
    runtime.mkdir(exist_ok=True)
    path = directory / deploy.FILENAMES[lb]
    path.write_text(config)
    process = spawn(lb, lb_command(lb, path, runtime), directory)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def answers_over(url: str, seconds: float) -> list[int]:
    """Statuses of one request every 0.1 s for ``seconds`` (once the balancer listens)."""
    statuses: list[int] = []
    end = time.monotonic() + seconds
    with httpx2.Client(base_url=url, timeout=5) as http:
        while time.monotonic() < end:
            try:
                statuses.append(http.post("/set/x").status_code)
            except httpx2.TransportError:
                if statuses:  # refused before it listened is expected; after, it is not
                    raise
            time.sleep(0.1)
    return statuses


@pytest.mark.parametrize("lb", ["haproxy", "nginx"])
@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_the_default_config_serves_an_app_without_the_example_routes(
    lb: str, kind: str, tmp_path: Path
) -> None:
    [port] = spare_ports(1)
    with instances(kind) as addresses:
        config = deploy.render(lb, addresses, listen=f"127.0.0.1:{port}")
        if lb == "nginx":
            config = render_nginx(addresses, listen=f"127.0.0.1:{port}",
                                  runtime_dir=str(tmp_path / "nginx-runtime"))
        with balancer(lb, config, tmp_path, port) as url:
            statuses = answers_over(url, WATCH_SECONDS)
    assert statuses and set(statuses) == {200}, statuses


@pytest.mark.parametrize("kind", FRAMEWORKS)
def test_a_health_path_is_checked_for_real(kind: str, tmp_path: Path) -> None:
    """The app's own endpoint keeps every instance in; a path it does not have (404) takes
    every instance out, and HAProxy answers 503 itself: the check is real."""
    [good, bad] = spare_ports(2)
    with instances(kind) as addresses:
        healthy = deploy.render("haproxy", addresses, listen=f"127.0.0.1:{good}",
                                health_path="/get")
        with balancer("haproxy", healthy, tmp_path, good) as url:
            assert set(answers_over(url, WATCH_SECONDS)) == {200}
        missing = deploy.render("haproxy", addresses, listen=f"127.0.0.1:{bad}",
                                health_path="/no-such-endpoint")
        with balancer("haproxy", missing, tmp_path, bad) as url:
            assert answers_over(url, WATCH_SECONDS)[-1] == 503
