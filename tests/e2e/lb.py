"""Real load balancers in front of real app instances, for the load-balancer e2e tests.

Every process runs in its own process group on spare loopback ports, writes its output to a
log file under the test's ``tmp_path`` and is killed (group and all) when the ``Cluster``
closes, also when the test fails. Simulated clients are httpx2 clients with their own cookie
jars, driven by a bounded thread pool.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

from sessionkit import lbconfig
from tests import support
from tests.redis_servers import spare_ports

ROOT = Path(__file__).resolve().parents[2]
#: One secret for every instance (40 characters), so any of them can verify any cookie.
SECRET = "lb-e2e-secret-0123456789-abcdefghijklmno"
INSTANCE_IDS = ("a", "b", "c")
COOKIE = "session"
START_SECONDS = 30
STOP_SECONDS = 15
REQUEST_SECONDS = 10
PHASE_SECONDS = 90
POOL_SIZE = 20


# --- processes --------------------------------------------------------------------------------
@dataclass
class Process:
    """A child in its own process group, so stopping it also stops its workers."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL to the whole group: the instance dies as a crashed machine would. Returns
        once every process of the group is gone: a worker still dying holds the listening
        socket, and a connection it accepts then is reset after the request was sent (which
        no balancer may retry for a POST)."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=STOP_SECONDS)
        deadline = time.monotonic() + STOP_SECONDS
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def group_alive(self) -> bool:
        """Whether a process of the group still runs (zombies, which hold no socket, don't
        count: they may wait for a reaper that never comes)."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.popen.pid and fields[0] != "Z":
                return True
        return False

    def terminate(self, seconds: float = STOP_SECONDS) -> int:
        """SIGTERM to the main process (as a supervisor does); wait for it to exit."""
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {seconds}s of SIGTERM:\n"
                                 f"{self.log_tail()}") from None

    def stop(self) -> None:
        """Whatever state it is in: gone afterwards, with no stray children."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_SECONDS)
        self.signal_group(signal.SIGKILL)  # workers left behind by the main process
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_SECONDS)


def spawn(name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None,
          ) -> Process:
    log = log_dir / f"{name}.log"
    inherited = {k: v for k, v in os.environ.items()  # no stray settings from the shell
                 if not k.startswith("SESSIONKIT_") or k.startswith("SESSIONKIT_TEST_")}
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv), cwd=ROOT, env={**inherited, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Process(name, popen, log)


def wait_until_serving(process: Process, url: str) -> None:
    """Poll ``url`` until it answers at all (any status), or fail with the process's log."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            if not process.alive() or time.monotonic() > deadline:
                raise AssertionError(f"{process.name} did not serve {url} within "
                                     f"{START_SECONDS}s:\n{process.log_tail()}") from None
            time.sleep(0.05)


def require_binary(name: str) -> str:
    """The path of a load balancer binary; skip without it (fail when services are required)."""
    return support.require_binary(
        name, f"apt-get install -y --no-install-recommends {name}; .ci/run does it")


# --- app instances and load balancers ----------------------------------------------------------
def app_command(framework: str, port: int) -> list[str]:
    """The FastAPI shop under uvicorn, the Flask shop under gunicorn (one worker, threads:
    local mode needs one process per instance)."""
    if framework == "fastapi":
        return [sys.executable, "-m", "uvicorn", "--factory", "examples.fastapi_app:create_app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--timeout-graceful-shutdown", "10"]
    return [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "8",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "10",
            "examples.flask_app:create_app()"]


def lb_command(lb: str, config: Path, runtime: Path) -> list[str]:
    if lb == "haproxy":
        return [require_binary("haproxy"), "-db", "-f", str(config)]
    # as root the workers would run as nobody, who cannot enter the test's private tmp_path
    user = "user root; " if os.geteuid() == 0 else ""
    return [require_binary("nginx"), "-c", str(config), "-p", f"{runtime}/",
            "-g", f"daemon off; {user}"]


def render_lb(lb: str, instances: dict[str, str], cookie: str, listen: str,
              runtime: Path) -> str:
    if lb == "nginx":
        return lbconfig.render_nginx(instances, cookie, listen, runtime_dir=str(runtime))
    return lbconfig.render(lb, instances, cookie, listen)


def start_balancer(lb: str, instances: dict[str, str], directory: Path, cookie: str = COOKIE,
                   ) -> tuple[Process, str]:
    """``lb`` with the config ``sessionkit.lbconfig`` renders, serving; the caller stops it."""
    (port,) = spare_ports(1)
    runtime = directory / f"{lb}-runtime"
    runtime.mkdir(exist_ok=True)
    config = directory / lbconfig.FILENAMES[lb]
    config.write_text(render_lb(lb, instances, cookie, f"127.0.0.1:{port}", runtime))
    process = spawn(lb, lb_command(lb, config, runtime), directory)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url + "/whoami")
    except BaseException:
        process.stop()
        raise
    return process, url


@contextlib.contextmanager
def balancer(lb: str, instances: dict[str, str], directory: Path, cookie: str = COOKIE,
             ) -> Iterator[str]:
    process, url = start_balancer(lb, instances, directory, cookie)
    try:
        yield url
    finally:
        process.stop()


@dataclass
class Cluster:
    """Three instances of one example app behind one load balancer."""

    lb: str
    framework: str
    directory: Path
    env: dict[str, str]
    instances: dict[str, Process] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    balancer: Process | None = None
    url: str = ""

    def start(self) -> None:
        require_binary(self.lb)
        ports = spare_ports(len(INSTANCE_IDS))
        for instance_id, port in zip(INSTANCE_IDS, ports, strict=True):
            env = {**self.env, "SESSIONKIT_INSTANCE_ID": instance_id,
                   "SESSIONKIT_SECRET_KEY": SECRET}
            self.instances[instance_id] = spawn(
                f"{self.framework}-{instance_id}", app_command(self.framework, port),
                self.directory, env)
            self.urls[instance_id] = f"http://127.0.0.1:{port}"
        for instance_id, process in self.instances.items():
            wait_until_serving(process, self.urls[instance_id] + "/whoami")
        addresses = {i: url.removeprefix("http://") for i, url in self.urls.items()}
        self.balancer, self.url = start_balancer(self.lb, addresses, self.directory)

    def close(self) -> None:
        for process in [*self.instances.values(), self.balancer]:
            if process is not None:
                process.stop()

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.log_tail()}" for p in self.instances.values()]
        if self.balancer is not None:
            parts.append(f"--- {self.balancer.name} ---\n{self.balancer.log_tail()}")
        return "\n".join(parts)


@contextlib.contextmanager
def cluster(lb: str, framework: str, directory: Path, **env: str) -> Iterator[Cluster]:
    started = Cluster(lb, framework, directory, env)
    try:
        started.start()
        yield started
    finally:
        started.close()


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
    problems: list[str] = field(default_factory=list)

    def item(self, name: str) -> str:
        return f"c{self.number}-{name}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.requests += 1
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
