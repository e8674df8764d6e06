"""Processes the bench starts on loopback: app servers, and a private redis-server.

A private redis-server counts this bench's commands only (``bench.redis_commands``), and keeps
the bench away from anyone's data. Every process is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.servers import redis_server, spare_port

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 30


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {STARTUP_SECONDS}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server (no persistence) and its URL."""
    with redis_server() as port:
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def app_server(kind: str, variant: str, urls: dict[str, str]) -> Iterator[int]:
    """The ``variant`` app under gunicorn (``kind="wsgi"``: one worker, 8 threads) or
    uvicorn (``"asgi"``: one worker); yields its port."""
    port = spare_port()
    bind = f"127.0.0.1:{port}"
    if kind == "wsgi":
        command = [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads",
                   "8", "--keep-alive", "60", "-b", bind, "--log-level", "warning",
                   "bench.apps:wsgi()"]
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.apps:asgi", "--host",
                   "127.0.0.1", "--port", str(port), "--log-level", "warning",
                   "--no-access-log", "--timeout-keep-alive", "60"]
    environment = {**os.environ, "BENCH_VARIANT": variant,
                   "BENCH_REDIS_URL": urls.get("redis", ""),
                   "BENCH_POSTGRES_URL": urls.get("postgresql", ""),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                               os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=ROOT, env=environment, start_new_session=True,
                               stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, f"{variant} server")
        yield port
    finally:
        stop(process)
