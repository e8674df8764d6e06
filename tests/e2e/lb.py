"""Real load balancers in front of real app instances, for the load-balancer e2e tests.

The instances and balancers are ``examples.cluster``'s (the cluster demo runs the same ones):
each process in its own process group on spare loopback ports, its output in a log file under
the test's ``tmp_path``, killed (group and all) when the ``Cluster`` closes, also when the test
fails. Simulated clients are httpx2 clients with their own cookie jars, driven by a bounded
thread pool.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

from examples import cluster as shared
from examples.cluster import COOKIE, INSTANCE_IDS, Cluster, Process, spare_ports
from tests import support

__all__ = ["COOKIE", "INSTANCE_IDS", "Cluster", "Process"]

REQUEST_SECONDS = 10
PHASE_SECONDS = 90
POOL_SIZE = 20


# --- app instances and load balancers (shared with the cluster demo) -------------------------
def require_binary(name: str) -> str:
    """The path of a load balancer binary; skip without it (fail when services are required)."""
    return support.require_binary(
        name, f"apt-get install -y --no-install-recommends {name}; .ci/run does it")


@contextlib.contextmanager
def balancer(lb: str, instances: dict[str, str], directory: Path, cookie: str = COOKIE,
             ) -> Iterator[str]:
    require_binary(lb)
    with shared.balancer(lb, instances, directory, cookie) as url:
        yield url


@contextlib.contextmanager
def cluster(lb: str, framework: str, directory: Path, **env: str) -> Iterator[Cluster]:
    require_binary(lb)
    with shared.cluster(lb, framework, directory, **env) as started:
        yield started


@contextlib.contextmanager
def name_servers(names: Sequence[str]) -> Iterator[dict[str, str]]:
    """A tiny HTTP server per name that answers every GET with its name: enough to see where
    a load balancer sends a request. Yields ``{name: "127.0.0.1:port"}``."""
    servers = []
    try:
        for name, port in zip(names, spare_ports(len(names)), strict=True):
            server = ThreadingHTTPServer(("127.0.0.1", port), _name_handler(name))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        yield {name: f"127.0.0.1:{s.server_address[1]}"
               for name, s in zip(names, servers, strict=False)}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _name_handler(name: str) -> type[BaseHTTPRequestHandler]:
    body = name.encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --- metrics ----------------------------------------------------------------------------------
_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        match = _SAMPLE_RE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        samples.append(Sample(name, dict(_LABEL_RE.findall(labels or "")), float(value)))
    return samples


def scrape(url: str) -> list[Sample] | None:
    """An instance's ``/metrics``; None while the app does not serve them."""
    response = httpx2.get(url + "/metrics", timeout=REQUEST_SECONDS)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, f"{url}/metrics: {response.status_code}"
    return parse_prometheus(response.text)


def total(samples: Sequence[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# --- simulated clients ------------------------------------------------------------------------
@dataclass
class ShopClient:
    """One browser: its own cookie jar, the cart it expects and the instance it is on."""

    number: int
    http: httpx2.Client
    cart: list[str] = field(default_factory=list)
    user: str | None = None
    #: The instance named by its session cookie (None before it has one).
    route: str | None = None
    requests: int = 0
    #: Requests sent again after the connection closed with no response (see ``call``).
    retries: int = 0
    problems: list[str] = field(default_factory=list)

    def item(self, name: str) -> str:
        return f"c{self.number}-{name}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.requests += 1
        try:
            response = self.http.request(method, path, json=body)
        except httpx2.RemoteProtocolError:
            # The connection closed before any byte of a response (a kept-alive connection
            # closed as the request went out, around an instance's death): nothing was
            # processed, and a browser sends the request again on a new connection. So do we,
            # once; a second failure is a problem like any other.
            self.retries += 1
            response = self.http.request(method, path, json=body)
        if response.status_code != 200:
            self.problem(f"{method} {path} -> {response.status_code} {response.text[:200]}")
            return {}
        cookie = self.http.cookies.get(COOKIE)
        if cookie:
            self.route = cookie.rpartition(".")[2]
        return response.json()

    def problem(self, text: str) -> None:
        self.problems.append(f"client {self.number}: {text}")

    def expect_cart(self, reply: Any, step: str) -> None:
        if reply.get("cart") != self.cart:
            self.problem(f"{step}: cart {reply.get('cart')} instead of {self.cart}")

    def expect_instance(self, reply: Any, step: str) -> None:
        if reply.get("instance") != self.route:
            self.problem(f"{step}: served by {reply.get('instance')} while its cookie "
                         f"names {self.route}")


def shopping_flow(client: ShopClient) -> None:
    """Ten requests: browse, fill the cart, log in (a new session id), check it all."""
    first = client.call("GET", "/whoami")
    if first and not first.get("session_new"):
        client.problem("a client without a cookie was served an existing session")
    for name in ("apple", "pear"):
        client.cart.append(client.item(name))
        client.expect_cart(client.call("POST", f"/cart/{client.item(name)}"), f"add {name}")
    client.expect_cart(client.call("GET", "/cart"), "view cart")
    client.expect_instance(client.call("GET", "/whoami"), "whoami")
    client.cart.append(client.item("plum"))
    client.expect_cart(client.call("POST", f"/cart/{client.item('plum')}"), "add plum")
    client.cart.remove(client.item("pear"))
    client.expect_cart(client.call("DELETE", f"/cart/{client.item('pear')}"), "remove pear")
    route_before_login = client.route
    client.user = f"user{client.number}"
    client.call("POST", "/login", {"user": client.user})
    if client.route != route_before_login:
        client.problem(f"login moved the session from {route_before_login} to {client.route}")
    client.expect_cart(client.call("GET", "/cart"), "cart after login")
    me = client.call("GET", "/whoami")
    client.expect_instance(me, "whoami after login")
    if me.get("user") != client.user:
        client.problem(f"whoami says user {me.get('user')} instead of {client.user}")


@dataclass
class AfterFailure:
    """What one client found after an instance went away."""

    kept_cart: bool
    moved: bool


def resume_flow(client: ShopClient, gone: str, sticky: bool) -> AfterFailure:
    """The first request after the failure writes (so a client that lost its session gets a
    new cookie at once and is counted as one affinity miss), then reads back."""
    was_on = client.route
    before = list(client.cart)
    client.cart.append(client.item("kiwi"))
    reply = client.call("POST", f"/cart/{client.item('kiwi')}")
    kept = reply.get("cart") == client.cart
    if not kept:
        if reply.get("cart") != [client.item("kiwi")]:
            client.problem(f"after the failure: cart {reply.get('cart')}, neither {client.cart} "
                           f"nor a fresh one")
        client.cart = [client.item("kiwi")]
    client.expect_cart(client.call("GET", "/cart"), "cart after the failure")
    me = client.call("GET", "/whoami")
    if me.get("instance") == gone:
        client.problem(f"served by {gone}, which is gone")
    if sticky:
        client.expect_instance(me, "whoami after the failure")
    if not kept and me.get("user") is not None:
        client.problem(f"lost cart {before} but still logged in as {me.get('user')}")
    return AfterFailure(kept_cart=kept, moved=was_on == gone)


def run_clients(clients: Sequence[ShopClient], flow: Callable[[ShopClient], Any]) -> list[Any]:
    """``flow`` for every client, ``POOL_SIZE`` at a time, bounded by ``PHASE_SECONDS``."""
    pool = ThreadPoolExecutor(max_workers=POOL_SIZE)
    try:
        return list(pool.map(flow, clients, timeout=PHASE_SECONDS))
    finally:  # on a failure, flows not yet started are dropped rather than run
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def shop_clients(url: str, count: int) -> Iterator[list[ShopClient]]:
    clients = [ShopClient(n, httpx2.Client(base_url=url, timeout=REQUEST_SECONDS))
               for n in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            client.http.close()


def problems(clients: Sequence[ShopClient], limit: int = 10) -> list[str]:
    found = [p for c in clients for p in c.problems]
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])
