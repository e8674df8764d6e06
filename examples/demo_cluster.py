"""One command, a whole cluster: three instances of the example shop behind HAProxy, and a live
dashboard over all of them with a "stop instance" button.

    python -m examples.demo_cluster [--mode local|redis|hybrid|jwt|<store URL>] [--flask]
                                    [--port 8080] [--dashboard-port 8081] [--no-install]

The mode defaults to ``SESSIONKIT_STORE``, else ``local``. ``redis`` starts a throwaway
redis-server (no persistence) for the demo; ``hybrid`` does too and turns the near cache on.
HAProxy is installed with apt-get when it is missing
and this runs as root (``--no-install`` never does). Ctrl-C (or SIGTERM) stops everything it
started and removes its temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from examples.cluster import (
    INSTANCE_IDS,
    Cluster,
    MissingProgram,
    Process,
    _port_free,
    find_binary,
    spare_ports,
    spawn,
)
from examples.shop import DASHBOARD_PATH
from sessionkit.dashboard import Dashboard, cluster_snapshot

#: Mode name -> the store URL the instances get (``None``: a redis-server the demo starts).
#: A new mode is one more entry here (and in the browser tests' table).
MODES: dict[str, str | None] = {"local": "memory://", "redis": None, "hybrid": None,
                                "jwt": "jwt://"}
#: Settings a mode adds to the instances' environment.
MODE_ENV: dict[str, dict[str, str]] = {"hybrid": {"SESSIONKIT_NEAR_CACHE": "1"}}
POLL_SECONDS = 0.5


class DemoError(RuntimeError):
    """Something the person running the demo must fix; printed as one line."""


# --- what the demo needs on the machine ------------------------------------------------------
def install_haproxy() -> None:
    """``apt-get install haproxy`` without letting the package start a service (the demo runs
    its own HAProxy); whatever it started anyway is stopped by its pid file."""
    apt = shutil.which("apt-get") or "/usr/bin/apt-get"
    command = [apt, "install", "-y", "--no-install-recommends", "-o", "Dpkg::Use-Pty=0",
               "haproxy"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")
    added = not policy.exists()
    if added:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        print("demo: haproxy is missing; installing it with apt-get", flush=True)
        if subprocess.run(command, env=env, timeout=600, check=False).returncode != 0:  # noqa: S603
            subprocess.run([apt, "update", "-qq"], env=env, timeout=300, check=False)  # noqa: S603
            subprocess.run(command, env=env, timeout=600, check=True)  # noqa: S603
    except (subprocess.SubprocessError, OSError) as exc:
        raise DemoError(f"installing haproxy with apt-get failed ({exc})") from None
    finally:
        if added:
            policy.unlink(missing_ok=True)
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(Path("/run/haproxy.pid").read_text().split()[0]), signal.SIGTERM)


def ensure_haproxy(may_install: bool) -> str:
    try:
        return find_binary("haproxy")
    except MissingProgram:
        if not may_install or os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise DemoError(
                "the cluster demo needs HAProxy: install it (Debian/Ubuntu: "
                "sudo apt-get install haproxy; macOS: brew install haproxy) and run it again"
            ) from None
    install_haproxy()
    return find_binary("haproxy")


def start_redis(directory: Path, mode: str) -> tuple[Process, str]:
    """A redis-server for the demo only: loopback, a spare port, nothing written to disk."""
    try:
        binary = find_binary("redis-server")
    except MissingProgram:
        raise DemoError(f"--mode {mode} starts a redis-server, which is not installed "
                        "(sudo apt-get install redis-server), or give a store URL: "
                        "--mode redis://host:6379/0") from None
    (port,) = spare_ports(1)
    process = spawn("redis", [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", str(directory)], directory)
    deadline = time.monotonic() + 15
    while not _redis_answers(port):
        if not process.alive() or time.monotonic() > deadline:
            process.stop()
            raise DemoError(f"redis-server did not start:\n{process.log_tail()}")
        time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- the aggregating dashboard -----------------------------------------------------------------
class Aggregator:
    """Polls every instance's dashboard snapshot; remembers the last one of an instance that
    stopped answering and shows it as stopped."""

    def __init__(self, cluster: Cluster, token: str) -> None:
        self.cluster = cluster
        self.token = token
        self.last: dict[str, dict[str, Any]] = {}

    def fetch(self, instance: str) -> dict[str, Any] | None:
        request = urllib.request.Request(  # noqa: S310  (http://127.0.0.1 only)
            f"{self.cluster.urls[instance]}{DASHBOARD_PATH}/snapshot.json",
            headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=POLL_SECONDS) as response:  # noqa: S310
                found: dict[str, Any] = json.load(response)["instances"][0]
                return found
        except (OSError, ValueError, KeyError, IndexError):
            return None

    def snapshot(self) -> dict[str, Any]:
        listed = []
        for instance in self.cluster.instances:
            found = self.fetch(instance)
            if found is not None:
                self.last[instance] = found
            else:
                found = {**self.last.get(instance, {"instance": instance}), "up": False}
            listed.append(found)
        return cluster_snapshot(listed, can_stop=True)

    def stop(self, instance: str) -> dict[str, Any]:
        process = self.cluster.instances.get(instance)
        if process is None:
            raise LookupError(instance)
        process.kill()
        print(f"demo: instance {instance} stopped (killed, as a crash would)", flush=True)
        return {"stopped": instance}


def control_panel(aggregator: Aggregator, token: str) -> Dashboard:
    """The demo's dashboard: every instance's counters and a stop button per instance, behind
    ``token`` (stopping instances is not for whoever reaches the port, nor for a page that
    rebinds its name to 127.0.0.1)."""
    return Dashboard(aggregator.snapshot, enabled=True, control=aggregator.stop, token=token)


def dashboard_link(url: str, token: str) -> str:
    """The address to open: the token in the fragment, which the browser never sends (so no
    log records it); the page keeps it and drops it from the address bar."""
    return f"{url}#token={token}"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(app: Callable[..., Any], port: int) -> Iterator[str]:
    """``app`` on 127.0.0.1:port in a thread, until the block ends."""
    try:
        server = make_server("127.0.0.1", port, app, server_class=_Server,
                             handler_class=_QuietHandler)
    except OSError as exc:
        raise DemoError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
                        f"pick another with --dashboard-port") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()


# --- the command ------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.demo_cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default=os.environ.get("SESSIONKIT_STORE") or "local",
                        help=f"{', '.join(MODES)} or a store URL (default: $SESSIONKIT_STORE, "
                             "else local)")
    parser.add_argument("--flask", action="store_true", help="the Flask shop, not FastAPI")
    parser.add_argument("--port", type=int, default=8080, help="HAProxy's port (8080)")
    parser.add_argument("--dashboard-port", type=int, default=None,
                        help="the dashboard's port (HAProxy's + 1)")
    parser.add_argument("--no-install", action="store_true",
                        help="never install HAProxy with apt-get")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, stop: threading.Event) -> None:
    if args.mode not in MODES and "://" not in args.mode:
        raise DemoError(f"unknown mode {args.mode!r}: {', '.join(MODES)} or a store URL")
    dashboard_port = args.dashboard_port or args.port + 1
    for port in (args.port, dashboard_port):
        if not _port_free(port):  # a listener; TIME-WAIT left by the last run is fine
            raise DemoError(f"127.0.0.1:{port} is in use; pick other ports with --port and "
                            f"--dashboard-port")
    ensure_haproxy(not args.no_install)
    directory = Path(tempfile.mkdtemp(prefix="sessionkit-demo-"))
    framework = "flask" if args.flask else "fastapi"
    redis: Process | None = None
    token = secrets.token_urlsafe(24)
    started = None
    try:
        store = MODES.get(args.mode, args.mode)
        if store is None:
            redis, store = start_redis(directory, args.mode)
        print(f"demo: starting {len(INSTANCE_IDS)} {framework} instances "
              f"({', '.join(INSTANCE_IDS)}) on {store} behind HAProxy", flush=True)
        started = Cluster("haproxy", framework, directory, port=args.port, env={
            "SESSIONKIT_STORE": store, "SHOP_DASHBOARD": "1", "SHOP_DASHBOARD_TOKEN": token,
            **MODE_ENV.get(args.mode, {}),
        })
        started.start()
        aggregator = Aggregator(started, token)
        with serve(control_panel(aggregator, token).wsgi, dashboard_port) as dashboard_url:
            print(f"demo: shop       {started.url}/", flush=True)
            print(f"demo: dashboard  {dashboard_link(dashboard_url, token)}", flush=True)
            print("demo: instances  " + " ".join(f"{i}={u}" for i, u in started.urls.items()),
                  flush=True)
            print(f"demo: logs in {directory}; Ctrl-C stops everything", flush=True)
            while not stop.wait(0.5):
                if started.balancer is not None and not started.balancer.alive():
                    raise DemoError(f"HAProxy exited:\n{started.balancer.log_tail()}")
    finally:
        print("demo: stopping", flush=True)
        if started is not None:
            started.close()
        if redis is not None:
            redis.stop()
        shutil.rmtree(directory, ignore_errors=True)
        print("demo: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            return  # a second Ctrl-C while stopping: the cleanup goes on
        stop.set()
        raise KeyboardInterrupt  # also interrupts a start that is still under way

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        run(args, stop)
    except KeyboardInterrupt:
        return 0
    except (DemoError, MissingProgram, RuntimeError) as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
