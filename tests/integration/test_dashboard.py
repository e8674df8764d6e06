"""The live dashboard (``sessionkit.dashboard``) mounted in both example shops: off unless
enabled, counters that follow what the shop's clients did, a token when configured, and never
a session id or session data in what it serves. (Tokens out of URLs, host names, framing and
the control routes' token: ``tests/security/test_dashboard_exposure.py``.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from sessionkit import SessionConfig
from sessionkit.dashboard import Dashboard, cluster_snapshot, instance_snapshot
from tests.support import FRAMEWORKS, KEY, ShopClient, engine_of, make_app

TOKEN = "dashboard-token-0123456789"
PATH = "/_sessionkit"


def shop(framework: str, monkeypatch: pytest.MonkeyPatch, *, enabled: bool = True,
         token: str | None = TOKEN, instance: str = "a") -> ShopClient:
    monkeypatch.setenv("SHOP_DASHBOARD", "1" if enabled else "0")
    if token:
        monkeypatch.setenv("SHOP_DASHBOARD_TOKEN", token)
    else:
        monkeypatch.delenv("SHOP_DASHBOARD_TOKEN", raising=False)
    config = SessionConfig(store="memory://", secret_key=KEY, instance_id=instance)
    return ShopClient(framework, make_app(framework, config))


def snapshot(client: ShopClient, **headers: str) -> dict[str, Any]:
    reply = client.raw("GET", f"{PATH}/snapshot.json", authorization=f"Bearer {TOKEN}",
                       **headers)
    assert reply.status == 200, reply.body
    assert reply.header("content-type") == "application/json"
    data: dict[str, Any] = reply.json
    return data


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_off_unless_enabled(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch, enabled=False)
    for path in ("/", "/snapshot.json", "/stop/a"):
        assert client.raw("GET", PATH + path).status == 404
    assert client.call("POST", "/cart/apple").json == {"cart": ["apple"]}  # the shop works


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_counters_follow_what_clients_did(framework: str, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    client = shop(framework, monkeypatch)
    before = snapshot(client)
    (item,) = before["instances"]
    assert item["instance"] == "a" and item["mode"] == "local" and item["up"] is True
    assert item["live_sessions"] == 0
    assert item["store_latency_ms"]["count"] == 0 and item["store_latency_ms"]["p50"] is None
    assert item["near_cache"]["hit_rate"] is None

    client.call("POST", "/cart/apple")               # new -> one session, one cookie
    client.call("POST", "/cart/pear")                # hit
    client.call("GET", "/cart")                      # hit
    other = shop(framework, monkeypatch, instance="b")
    cookie = f"session={client.cookie}"
    other.raw("GET", "/cart", cookie=cookie)         # names a, served by b: affinity miss
    client.raw("GET", "/cart", cookie="session=forged")  # invalid

    after = snapshot(client)["instances"][0]
    lookups = {k: after["lookups"][k] - item["lookups"][k] for k in after["lookups"]}
    assert lookups["hit"] == 2 and lookups["invalid"] == 1 and lookups["affinity_miss"] == 0
    assert after["live_sessions"] == 1
    assert after["cookie_bytes"]["count"] >= 1
    assert after["cookie_bytes"]["p99"] in (128.0, 256.0, 512.0)
    # memory:// operations are not timed (they cost less than timing them): no latency shown
    assert after["store_latency_ms"]["count"] == 0
    assert snapshot(other)["instances"][0]["lookups"]["affinity_miss"] == 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_polling_the_dashboard_loads_no_session(framework: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch)
    client.call("POST", "/cart/apple")
    first = snapshot(client)["lookups"]
    cookie = f"session={client.cookie}"
    for _ in range(3):  # with the shop's cookie, as a browser polling the page sends it
        polled = client.raw("GET", f"{PATH}/snapshot.json", cookie=cookie,
                            authorization=f"Bearer {TOKEN}")
        assert polled.status == 200
        assert client.raw("GET", f"{PATH}/", cookie=cookie).status == 200
    assert snapshot(client)["lookups"] == first


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_snapshot_never_holds_a_session_id_or_data(framework: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch)
    client.call("POST", "/login", {"user": "zelda-secret-user"})
    client.call("POST", "/cart/pomegranate-secret")
    assert client.cookie
    body = client.raw("GET", f"{PATH}/snapshot.json",
                      authorization=f"Bearer {TOKEN}").body.decode()
    session_id = client.cookie.rpartition(".")[0]
    for secret in (session_id, session_id[:16], "zelda-secret-user", "pomegranate-secret"):
        assert secret not in body
    assert engine_of(client.app).events.live_sessions() == 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_token_by_bearer_header(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch, token=TOKEN)
    path = f"{PATH}/snapshot.json"
    denied = client.raw("GET", path)
    assert denied.status == 401 and denied.header("www-authenticate") == "Bearer"
    assert TOKEN not in denied.body.decode()
    assert client.raw("GET", path, authorization="Bearer wrong").status == 401
    assert client.raw("GET", path, authorization=f"Bearer {TOKEN}x").status == 401
    assert client.raw("GET", f"{path}?token={TOKEN}").status == 401  # never in a URL
    assert client.raw("GET", path, authorization=f"Bearer {TOKEN}").status == 200
    # The page is static (its counters come from snapshot.json): served without the token.
    page = client.raw("GET", f"{PATH}/")
    assert page.status == 200 and b"live_sessions" in page.body and TOKEN not in page.body.decode()


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        Dashboard(dict, enabled=True, token="short")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_page_is_self_contained(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch)
    for path in (f"{PATH}/", PATH):
        reply = client.raw("GET", path)
        assert reply.status == 200 and reply.header("content-type").startswith("text/html")
        page = reply.body.decode()
        assert "snapshot.json" in page
        assert not re.search(r"<(script|link)[^>]+(src|href)=", page), "loads nothing"
        assert "http://" not in page and "https://" not in page
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert client.raw("GET", f"{PATH}/nothing", **auth).status == 404
    assert client.raw("POST", f"{PATH}/snapshot.json", **auth).status == 405
    assert client.raw("POST", f"{PATH}/stop/a", **auth).status == 404  # no control but the demo's
    assert client.raw("GET", f"{PATH}/nothing").status == 401  # no route shown without the token


def test_near_cache_hit_rate_when_the_engine_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop("fastapi", monkeypatch)
    events = engine_of(client.app).events
    assert snapshot(client)["instances"][0]["near_cache"]["hit_rate"] is None
    events.near_cache = dict.fromkeys(("hit", "route_elsewhere", "not_cached"), 0)
    assert snapshot(client)["instances"][0]["near_cache"]["hit_rate"] is None  # nothing yet
    events.near_cache.update(hit=6, route_elsewhere=1, not_cached=1)
    near = snapshot(client)["instances"][0]["near_cache"]
    assert near["hit_rate"] == 0.75 and near["counts"]["hit"] == 6


# --- the control route (the cluster demo's "stop instance N") ---------------------------------
def control_dashboard(stopped: list[str]) -> Dashboard:
    def stop(instance: str) -> dict[str, Any]:
        if instance not in ("a", "b"):
            raise LookupError(instance)
        stopped.append(instance)
        return {"stopped": instance}

    return Dashboard(lambda: cluster_snapshot([], can_stop=True), enabled=True, control=stop,
                     token=TOKEN)


def test_stop_only_from_loopback_with_the_pages_header() -> None:
    stopped: list[str] = []
    wsgi = Client(control_dashboard(stopped).wsgi)
    header = {"X-Sessionkit-Dashboard": "1", "Authorization": f"Bearer {TOKEN}"}
    here = {"REMOTE_ADDR": "127.0.0.1"}

    def post(path: str, headers: dict[str, str], environ: dict[str, str]) -> Any:
        return wsgi.post(path, headers=headers, environ_overrides=environ)

    refused = post("/stop/a", header, {"REMOTE_ADDR": "192.0.2.7"})
    assert refused.status_code == 403 and "this machine" in refused.json["error"]
    refused = post("/stop/a", {"Authorization": f"Bearer {TOKEN}"}, here)  # a cross-site
    # form cannot set the header
    assert refused.status_code == 403 and "x-sessionkit-dashboard" in refused.json["error"]
    assert wsgi.get("/stop/a", headers=header, environ_overrides=here).status_code == 405
    assert post("/stop/zz", header, here).status_code == 404
    assert stopped == []
    reply = post("/stop/a", header, {"REMOTE_ADDR": "::1"})
    assert reply.status_code == 200 and reply.json == {"stopped": "a"}
    assert stopped == ["a"]

    asgi = control_dashboard(stopped).asgi
    remote = TestClient(asgi, base_url="http://127.0.0.1")  # the client is "testclient"
    assert remote.post("/stop/b", headers=header).status_code == 403
    local = TestClient(asgi, client=("127.0.0.1", 5000), base_url="http://127.0.0.1")
    assert local.post("/stop/b", headers=header).json() == {"stopped": "b"}
    snapshot = local.get("/snapshot.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert json.loads(snapshot.content)["can_stop"] is True
    assert stopped == ["a", "b"]


def test_instance_snapshot_is_json_for_any_engine_state(monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop("flask", monkeypatch)
    engine = engine_of(client.app)
    engine.events.observe_store(30.0)  # past the last bucket
    data = instance_snapshot(engine)
    assert data["store_latency_ms"]["p99"] == "+Inf"
    json.dumps(data, allow_nan=False)
