"""Local mode across instances: misroutes are classified, counted, logged and reported;
the fallback policy and draining carry sessions across a restart; several worker processes
of one instance are detected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.events import Event, SessionLogFilter, current
from sessionkit.telemetry import annotate_span
from tests.stores import iter_params, store_url_for
from tests.support import KEY, FakeClock, ShopClient, make_app

ROOT = Path(__file__).resolve().parents[2]


def instance(name: str, clock: FakeClock, framework: str = "flask", **settings: Any
             ) -> ShopClient:
    config = SessionConfig(store="memory://", secret_key=KEY, instance_id=name, clock=clock,
                           **settings)
    return ShopClient(framework, make_app(framework, config))


def engine_of(shop: ShopClient) -> SessionEngine:
    from tests.support import engine_of as find

    engine: SessionEngine = find(shop.app)
    return engine


def metric(shop: ShopClient, name: str, **labels: str) -> float:
    text = shop.raw("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_affinity_miss_is_counted_logged_hooked_and_reported(
    framework: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    a = instance("inst-a", clock, framework)
    b = instance("inst-b", clock, framework, debug_header=True)
    seen: list[Event] = []
    engine_of(b).events.on("affinity_miss", seen.append)
    a.call("POST", "/cart/apple")
    cookie = f"session={a.cookie}"
    token = (a.cookie or "").split(".")[0]

    reply = b.raw("GET", "/cart", cookie=cookie)
    assert reply.json == {"cart": []}
    assert reply.header("x-sessionkit-affinity") == "miss; expected=inst-a; served=inst-b"
    assert metric(b, "sessionkit_lookups_total", result="affinity_miss") == 1
    assert [(e.expected_instance, e.instance) for e in seen] == [("inst-a", "inst-b")]
    assert "names instance 'inst-a', served by 'inst-b'" in caplog.text
    assert token not in caplog.text  # never the raw id
    assert a.raw("GET", "/cart", cookie=cookie).header("x-sessionkit-affinity") is None

    written = b.raw("POST", "/cart/pear", cookie=cookie)  # new-session: this instance's cookie
    [new_cookie] = written.set_cookies
    assert new_cookie.split(";")[0].endswith(".inst-b")


def test_lookup_classes_and_live_sessions_in_metrics(clock: FakeClock) -> None:
    a = instance("inst-a", clock)
    a.call("GET", "/cart")  # new
    a.call("POST", "/cart/apple")  # new -> created
    a.call("GET", "/cart")  # hit
    a.raw("GET", "/cart", cookie="session=garbage")  # invalid
    stale = a.cookie
    clock.advance(15 * 86400)
    a.raw("GET", "/cart", cookie=f"session={stale}")  # expired -> not_found
    assert metric(a, "sessionkit_lookups_total", result="hit") == 1
    assert metric(a, "sessionkit_lookups_total", result="invalid") == 1
    assert metric(a, "sessionkit_lookups_total", result="not_found") == 1
    assert metric(a, "sessionkit_events_total", event="created") == 1
    assert metric(a, "sessionkit_events_total", event="expired") == 1
    assert metric(a, "sessionkit_live_sessions") == 0
    a.call("POST", "/cart/x")
    assert metric(a, "sessionkit_live_sessions", instance="inst-a", mode="local") == 1


def test_a_failing_hook_never_breaks_a_request(clock: FakeClock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    a = instance("inst-a", clock)

    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    engine_of(a).events.on("created", broken)
    assert a.call("POST", "/cart/apple").status == 200
    assert "created hook" in caplog.text
    with pytest.raises(ValueError, match="unknown event"):
        engine_of(a).events.on("creatd", broken)


@pytest.fixture(params=list(iter_params(["sqlite", "redis"])))
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request, tmp_path, request.param)


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_fallback_picks_up_a_drained_session_and_keeps_it_here(
    framework: str, clock: FakeClock, shared_url: str
) -> None:
    a = instance("inst-a", clock, framework, drain_to=shared_url)
    b = instance("inst-b", clock, framework, on_affinity_miss="fallback",
                 fallback_store=shared_url)
    a.call("POST", "/login", {"user": "ann"})
    a.call("POST", "/cart/apple")
    old = a.cookie or ""
    assert engine_of(a).drain() == 1
    assert engine_of(a).drain() == 0  # once

    moved = b.raw("GET", "/cart", cookie=f"session={old}")
    assert moved.json == {"cart": ["apple"]}
    [rerouted] = moved.set_cookies  # same session, now naming this instance
    value = rerouted.split(";")[0].split("=", 1)[1]
    assert value == old.rsplit(".", 1)[0] + ".inst-b"
    assert b.raw("GET", "/whoami", cookie=f"session={value}").json["user"] == "ann"
    assert metric(b, "sessionkit_live_sessions") == 1
    engine_of(b).close()
    fallback = SessionEngine(store=shared_url, secret_key=KEY)
    assert fallback.load(f"session={old}").is_new  # moved, not copied


def test_drain_is_bounded_in_time(clock: FakeClock, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    engine = SessionEngine(store="memory://", secret_key=KEY, clock=clock, drain_to=url,
                           drain_timeout=0.000001)
    for n in range(50):
        session = engine.load(None)
        session["n"] = n
        engine.commit(session)
    moved = engine.drain()
    assert moved < 50
    assert "left behind (time limit)" in caplog.text


def test_asgi_lifespan_shutdown_drains(clock: FakeClock, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'drain.db'}"
    config = SessionConfig(store="memory://", secret_key=KEY, instance_id="inst-a", clock=clock,
                           drain_to=url)
    app = make_app("fastapi", config)
    with TestClient(app) as client:
        client.post("/cart/apple")
        cookie = client.cookies["session"]
    reader = SessionEngine(store=url, secret_key=KEY, clock=clock)
    assert reader.load(f"session={cookie}")["cart"] == ["apple"]


def test_sigterm_drains_a_plain_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from sessionkit import SessionEngine
        engine = SessionEngine(store="memory://", secret_key={KEY!r}, drain_to={url!r})
        engine.lifecycle.install_exit_hooks()  # what the adapters do at startup
        session = engine.load(None)
        session["cart"] = ["apple"]
        [cookie] = engine.commit(session).set_cookies
        print(cookie.split(";")[0], flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 128 + 15, done.stderr
    cookie = done.stdout.strip()
    assert SessionEngine(store=url, secret_key=KEY).load(cookie)["cart"] == ["apple"]


def test_route_cookie_is_set_and_cleared_with_the_session(clock: FakeClock) -> None:
    a = instance("inst-a", clock, route_cookie="srv")
    [_, route] = a.call("POST", "/cart/apple").set_cookies
    assert route.startswith("srv=inst-a;")
    assert "Path=/" in route
    cleared = a.call("POST", "/logout").set_cookies
    assert sorted(c.split("=")[0] for c in cleared) == ["session", "srv"]
    assert all("Max-Age=0" in c for c in cleared)


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"on_affinity_miss": "retry"}, "'new-session' or 'fallback'"),
    ({"on_affinity_miss": "fallback"}, "needs fallback_store"),
    ({"drain_to": "memory://"}, "every instance can reach"),
    ({"route_cookie": "session"}, "other than cookie_name"),
    ({"drain_timeout": 0}, "positive"),
])
def test_bad_affinity_settings(settings: dict[str, Any], fragment: str) -> None:
    from sessionkit import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        SessionEngine(store="memory://", secret_key=KEY, **settings)


def test_drain_and_fallback_need_a_real_secret_key(tmp_path: Path) -> None:
    from sessionkit import ConfigError

    with pytest.raises(ConfigError, match="drain_to"):
        SessionEngine(store="memory://", drain_to=f"sqlite:///{tmp_path / 'd.db'}")


def test_several_worker_processes_of_one_instance_are_detected(tmp_path: Path) -> None:
    name = f"prefork-{os.getpid()}"
    script = textwrap.dedent(f"""
        import logging, os, sys, time
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
        from sessionkit import SessionEngine
        engine = SessionEngine(store="memory://", secret_key={KEY!r}, instance_id={name!r})
        engine.lifecycle.request_started()  # what the adapters do for every request
        engine.load(None)
        print("claimed", flush=True)
        time.sleep(float(os.environ["SLEEP"]))
    """)
    # Workers of one server: one parent, the same program and directory (the sleep goes in
    # the environment, so that the command lines are the same).
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env={**os.environ, "SLEEP": "5"})
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "claimed"
        second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=60, cwd=ROOT, check=True, env={**os.environ, "SLEEP": "0"})
    finally:
        first.kill()
        first.wait(timeout=10)
        assert first.stdout is not None
        first.stdout.close()
    assert "more than one worker process" in second.stdout
    assert str(first.pid) in second.stdout
    alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=60, cwd=ROOT, check=True, env={**os.environ, "SLEEP": "0"})
    assert "more than one worker process" not in alone.stdout


def test_log_filter_and_span_carry_the_request_context(clock: FakeClock) -> None:
    import logging

    a = instance("inst-a", clock)
    b = instance("inst-b", clock)
    a.call("POST", "/cart/apple")
    current.set(None)
    b.raw("GET", "/cart", cookie=f"session={a.cookie}")  # loads in this thread (Flask)
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)
    SessionLogFilter().filter(record)
    assert record.instance_id == "inst-b"  # type: ignore[attr-defined]
    assert record.affinity_miss is True  # type: ignore[attr-defined]

    class Span:
        def __init__(self) -> None:
            self.attributes: dict[str, object] = {}

        def set_attribute(self, key: str, value: object) -> None:
            self.attributes[key] = value

    span = Span()
    annotate_span(span)
    assert span.attributes == {"service.instance.id": "inst-b", "sessionkit.lookup":
                               "affinity_miss", "sessionkit.affinity_miss": True,
                               "sessionkit.expected_instance": "inst-a"}


def test_annotate_span_with_opentelemetry(clock: FakeClock) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    a = instance("inst-a", clock)
    a.call("POST", "/cart/apple")
    a.call("GET", "/cart")
    with provider.get_tracer("test").start_as_current_span("request") as span:
        annotate_span()
        assert span.is_recording()
    [finished] = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert finished.attributes["service.instance.id"] == "inst-a"
    assert finished.attributes["sessionkit.lookup"] == "hit"
    assert len(str(finished.attributes["session.id"])) == 16


def test_prometheus_client_registry(clock: FakeClock) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from sessionkit.prometheus import register

    a = instance("inst-a", clock)
    a.call("POST", "/cart/apple")
    registry = CollectorRegistry()
    register(engine_of(a), registry)
    text = generate_latest(registry).decode()
    assert 'sessionkit_events_total{event="created",instance="inst-a"' in text
    assert "sessionkit_store_latency_seconds_bucket" in text
    assert json.dumps(text)  # plain text, no surprises
