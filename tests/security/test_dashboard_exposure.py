"""The dashboard against the ways its counters (and, in the cluster demo, its stop buttons)
could leak or be driven by someone else.

- A token never travels in the URL: the server refuses ``?token=`` (it would land in access
  logs, proxies and browser history); the page takes it from the fragment (never sent), keeps
  it for the tab and drops it from the address bar. ``tests/browser`` checks that in Chromium.
- Enabled without a token, it says so in the log, and answers only requests addressed to
  ``localhost`` or an IP address: a DNS-rebinding page (whose ``Host`` is its own name) gets
  nothing. ``allowed_hosts`` names the hosts it answers for.
- Every response forbids framing (``X-Frame-Options`` and ``frame-ancestors``): no
  clickjacking of a stop button.
- The routes that stop instances need a token: the cluster demo's panel has one.
- The page renders every value with ``textContent``: an instance name is never markup.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from examples import demo_cluster
from sessionkit import SessionConfig
from sessionkit.dashboard import Dashboard, cluster_snapshot
from sessionkit.dashboard.page import PAGE
from tests.support import FRAMEWORKS, KEY, ShopClient, make_app

TOKEN = "dashboard-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATH = "/_sessionkit"


def shop(framework: str, monkeypatch: pytest.MonkeyPatch, token: str | None) -> ShopClient:
    monkeypatch.setenv("SHOP_DASHBOARD", "1")
    if token:
        monkeypatch.setenv("SHOP_DASHBOARD_TOKEN", token)
    else:
        monkeypatch.delenv("SHOP_DASHBOARD_TOKEN", raising=False)
    config = SessionConfig(store="memory://", secret_key=KEY, instance_id="a")
    return ShopClient(framework, make_app(framework, config))


def panel(token: str | None = TOKEN, **settings: Any) -> Dashboard:
    return Dashboard(lambda: cluster_snapshot([{"instance": "a", "up": True}]), enabled=True,
                     token=token, **settings)


# --- the token stays out of URLs ----------------------------------------------------------------
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_token_in_the_query_string_is_refused(framework: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch, TOKEN)
    refused = client.raw("GET", f"{PATH}/snapshot.json?token={TOKEN}")
    assert refused.status == 401
    assert TOKEN not in refused.body.decode()
    assert client.raw("GET", f"{PATH}/snapshot.json", authorization=f"Bearer {TOKEN}"
                      ).status == 200


def test_the_page_reads_the_token_from_the_fragment_and_drops_it() -> None:
    script = PAGE[PAGE.index("<script>"):]
    assert "location.hash" in script and "history.replaceState" in script
    assert "sessionStorage" in script
    assert "location.search" not in script  # a token in the query string is never used


def test_the_page_holds_nothing_and_the_counters_need_the_token() -> None:
    wsgi = Client(panel().wsgi)
    page = wsgi.get("/")
    assert page.status_code == 200 and b"sessionkit dashboard" in page.data
    assert b'"instance"' not in page.data  # static: every number comes from snapshot.json
    assert wsgi.get("/snapshot.json").status_code == 401
    assert wsgi.get("/snapshot.json", headers=AUTH).json["instances"][0]["instance"] == "a"


# --- no token: a warning, and only local host names ---------------------------------------------
def test_enabled_without_a_token_it_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sessionkit")
    panel(token=None)
    assert "without a token" in caplog.text
    caplog.clear()
    panel(token=TOKEN)
    Dashboard(dict, enabled=False)
    assert "without a token" not in caplog.text


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:8081", 200), ("localhost:8081", 200), ("[::1]:8081", 200), ("localhost", 200),
    ("10.0.0.5", 200), ("app.localhost:8000", 200),
    ("rebind.attacker.example:8081", 403), ("127.0.0.1.nip.io:8081", 403),
    ("localhost.attacker.example", 403), ("", 200),
])
def test_without_a_token_only_local_names_and_addresses_are_answered(host: str,
                                                                    status: int) -> None:
    """DNS rebinding: a page at rebind.attacker.example whose name now resolves to 127.0.0.1
    is same-origin with the dashboard for the browser, but its requests say whose they are
    in ``Host``."""
    wsgi = Client(panel(token=None).wsgi)
    for path in ("/", "/snapshot.json"):
        reply = wsgi.get(path, headers={"Host": host} if host else {},
                         environ_overrides={} if host else {"HTTP_HOST": ""})
        assert reply.status_code == status, (path, host)
        if status == 403:
            assert b'"instances"' not in reply.data and b"<script" not in reply.data


def test_allowed_hosts_names_the_hosts_answered() -> None:
    wsgi = Client(panel(token=None, allowed_hosts=["dash.example.internal"]).wsgi)
    assert wsgi.get("/snapshot.json", headers={"Host": "dash.example.internal:80"}
                    ).status_code == 200
    assert wsgi.get("/snapshot.json", headers={"Host": "Dash.Example.Internal."}
                    ).status_code == 200
    assert wsgi.get("/snapshot.json", headers={"Host": "127.0.0.1"}).status_code == 403
    # With a token, any host name is answered (the token is what proves who asks)...
    tokened = Client(panel().wsgi)
    assert tokened.get("/snapshot.json", headers={"Host": "shop.example", **AUTH}
                       ).status_code == 200
    # ...unless allowed_hosts says otherwise.
    strict = Client(panel(allowed_hosts=["shop.example"]).wsgi)
    assert strict.get("/snapshot.json", headers={"Host": "other.example", **AUTH}
                      ).status_code == 403


# --- framing ------------------------------------------------------------------------------------
def _frame_headers(headers: Any) -> tuple[str, str]:
    return headers.get("x-frame-options", ""), headers.get("content-security-policy", "")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_response_forbids_framing(framework: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop(framework, monkeypatch, TOKEN)
    for method, path, headers in [
        ("GET", "/", {}), ("GET", "/snapshot.json", {"authorization": f"Bearer {TOKEN}"}),
        ("GET", "/snapshot.json", {}), ("POST", "/snapshot.json", {}),
        ("GET", "/nothing", {"authorization": f"Bearer {TOKEN}"}),
    ]:
        reply = client.raw(method, PATH + path, **headers)
        frame_options = reply.header("x-frame-options")
        policy = reply.header("content-security-policy") or ""
        assert frame_options == "DENY", (method, path, reply.status)
        assert "frame-ancestors 'none'" in policy, (method, path, reply.status)


# --- the control routes ---------------------------------------------------------------------------
def test_a_dashboard_that_can_stop_instances_needs_a_token() -> None:
    with pytest.raises(ValueError, match="token"):
        Dashboard(dict, enabled=True, control=lambda name: {})


def demo_panel(stopped: list[str]) -> tuple[Dashboard, str]:
    """The cluster demo's own panel, over a cluster of two instances that record stops."""
    def kill(name: str) -> Any:
        return SimpleNamespace(kill=lambda: stopped.append(name))

    cluster = SimpleNamespace(instances={"a": kill("a"), "b": kill("b")}, urls={})
    token = "demo-token-0123456789abcdef"
    return demo_cluster.control_panel(demo_cluster.Aggregator(cluster, token), token), token


def test_the_cluster_demo_panel_wants_its_token_and_its_host() -> None:
    stopped: list[str] = []
    dashboard, token = demo_panel(stopped)
    link = demo_cluster.dashboard_link("http://127.0.0.1:8081/", token)
    assert token not in link.split("#")[0]  # only in the fragment: never sent, never logged
    here = TestClient(dashboard.asgi, client=("127.0.0.1", 5000),
                      base_url="http://127.0.0.1:8081")
    control = {"X-Sessionkit-Dashboard": "1"}
    assert here.post("/stop/a", headers=control).status_code == 401
    assert here.get("/snapshot.json").status_code == 401
    rebound = here.post("/stop/a", headers={**control, "Authorization": f"Bearer {token}",
                                            "Host": "rebind.attacker.example:8081"})
    assert rebound.status_code == 403
    assert stopped == []
    done = here.post("/stop/a", headers={**control, "Authorization": f"Bearer {token}"})
    assert done.status_code == 200 and stopped == ["a"]


def test_dns_rebinding_against_a_real_server_gets_nothing() -> None:
    """The demo's panel on a real socket, asked the way a rebound browser page asks."""
    from tests.redis_servers import spare_ports

    stopped: list[str] = []
    dashboard, token = demo_panel(stopped)
    (port,) = spare_ports(1)
    with demo_cluster.serve(dashboard.wsgi, port):
        for host in ("rebind.attacker.example", "127.0.0.1"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/stop/b", headers={
                "Host": f"{host}:{port}", "X-Sessionkit-Dashboard": "1",
                "Authorization": f"Bearer {token}"})
            reply = connection.getresponse()
            body = reply.read()
            connection.close()
            if host == "127.0.0.1":
                assert reply.status == 200 and json.loads(body) == {"stopped": "b"}
            else:
                assert reply.status == 403
                assert reply.getheader("x-frame-options") == "DENY"
    assert stopped == ["b"]


# --- rendering ----------------------------------------------------------------------------------
def test_the_page_renders_values_as_text_only() -> None:
    script = PAGE[PAGE.index("<script>"):]
    assert "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on"):
        assert sink not in script, sink
    assert not re.search(r"\.on[a-z]+\s*=", script), "no inline event handler properties"
