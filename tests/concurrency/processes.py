"""Real server processes on spare loopback ports: uvicorn (ASGI) and gunicorn with threads
(WSGI) serving ``tests.concurrency.served``; started with a bounded wait, always stopped."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30
THREADS = 32


def command(server: str, port: int) -> list[str]:
    bind = f"127.0.0.1:{port}"
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--factory", "tests.concurrency.served:asgi_app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--backlog", "2048", "--timeout-keep-alive", "300"]
    return [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", str(THREADS),
            "--worker-connections", "2048", "--backlog", "2048", "--keep-alive", "300",
            "--bind", bind,
            "--log-level", "warning", "tests.concurrency.served:wsgi_app()"]


@contextlib.contextmanager
def serve(server: str, store: str, secret_key: str, log: Path) -> Iterator[str]:
    """``server`` ("uvicorn" or "gunicorn") serving the test app on ``store``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SESSIONKIT_STORE": store,
           "SESSIONKIT_SECRET_KEY": secret_key, "SESSIONKIT_INSTANCE_ID": "conc"}
    with open(log, "wb") as output:
        process = subprocess.Popen(command(server, port), cwd=ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx2.get(base + "/get", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready within {STARTUP_SECONDS}s: {log.read_text()[-2000:]}")
