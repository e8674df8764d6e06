"""The one-command cluster demo (``python -m examples.demo_cluster``, what ``python3 dev.py
demo-cluster`` runs): it prints its URLs, serves the shop through HAProxy and a dashboard over
all instances whose button stops one, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest

from examples.cluster import ROOT, spare_ports
from tests.e2e.lb import require_binary
from tests.unit.test_cluster_ports import time_wait_on

START_SECONDS = 60
STOP_SECONDS = 30


def listening(port: int) -> bool:
    """Whether something accepts connections on the port (binding would also fail for a port
    with connections in TIME_WAIT, which hold no process)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def read_lines(stream: object, into: list[str], ready: threading.Event) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)
        if "Ctrl-C stops everything" in line:
            ready.set()
    ready.set()


def start_demo(args: list[str], tmp_path: Path,
               ) -> tuple[subprocess.Popen[str], list[str], threading.Event, threading.Thread]:
    """``python -m examples.demo_cluster ARGS`` with its output collected line by line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKIT_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "examples.demo_cluster", "--no-install", *args],
        cwd=ROOT, env={**env, "TMPDIR": str(tmp_path)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=read_lines, args=(demo.stdout, lines, ready), daemon=True)
    reader.start()
    return demo, lines, ready, reader


def ctrl_c(demo: subprocess.Popen[str], lines: list[str], reader: threading.Thread) -> int:
    """SIGINT (what Ctrl-C sends) and the demo's exit status, within STOP_SECONDS."""
    if demo.poll() is None:
        demo.send_signal(signal.SIGINT)
    try:
        status = demo.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGKILL)
        demo.wait(timeout=STOP_SECONDS)
        pytest.fail(f"the demo did not stop within {STOP_SECONDS}s of SIGINT:\n{''.join(lines)}")
    reader.join(timeout=5)
    return status


@pytest.mark.parametrize(("framework", "mode"), [("fastapi", "local"), ("flask", "redis")])
def test_demo_serves_the_cluster_and_ctrl_c_stops_everything(framework: str, mode: str,
                                                              tmp_path: Path) -> None:
    """``--mode redis`` also starts (and stops) a redis-server of its own."""
    require_binary("haproxy")
    if mode == "redis":
        require_binary("redis-server")
    port, dashboard_port = spare_ports(2)
    demo, lines, ready, reader = start_demo(
        ["--mode", mode, "--port", str(port), "--dashboard-port", str(dashboard_port),
         *(["--flask"] if framework == "flask" else [])], tmp_path)
    instance_ports: list[int] = []
    redis_port: int | None = None
    try:
        assert ready.wait(START_SECONDS) and demo.poll() is None, "".join(lines)
        out = "".join(lines)
        assert f"shop       http://127.0.0.1:{port}/" in out
        link = re.search(rf"dashboard  http://127\.0\.0\.1:{dashboard_port}/#token=(\S+)", out)
        assert link, out  # the token in the fragment: the browser never sends it
        auth = {"Authorization": f"Bearer {link.group(1)}"}
        instance_ports = [int(p) for p in re.findall(r"[abc]=http://127\.0\.0\.1:(\d+)", out)]
        assert len(instance_ports) == 3
        store = re.search(r"instances \(a, b, c\) on (\S+) behind HAProxy", out)
        assert store and store.group(1).startswith("memory://" if mode == "local" else
                                                   "redis://127.0.0.1:"), out
        redis_port = int(store.group(1).split(":")[2].split("/")[0]) if mode == "redis" else None

        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as shop:
            assert "sessionkit shop" in shop.get("/").text
            assert shop.post("/cart/apple").json() == {"cart": ["apple"]}
            served = shop.get("/whoami").json()["instance"]
        with httpx2.Client(base_url=f"http://127.0.0.1:{dashboard_port}", timeout=10) as panel:
            assert "sessionkit dashboard" in panel.get("/").text
            assert panel.get("/snapshot.json").status_code == 401  # the stop buttons are ours
            panel.headers.update(auth)
            snapshot = panel.get("/snapshot.json").json()
            assert [i["instance"] for i in snapshot["instances"]] == ["a", "b", "c"]
            assert all(i["up"] for i in snapshot["instances"]) and snapshot["can_stop"]
            live = [i["live_sessions"] for i in snapshot["instances"]]
            # local: one instance holds the one session; a shared store has no per-instance count
            assert sorted(live, key=str) == ([None] * 3 if mode == "redis" else [0, 0, 1]), live
            stopped = panel.post(f"/stop/{served}", headers={"X-Sessionkit-Dashboard": "1"})
            assert stopped.json() == {"stopped": served}
            after = {i["instance"]: i["up"] for i in panel.get("/snapshot.json").json()[
                "instances"]}
            assert after == {i: i != served for i in "abc"}
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                           cookies=shop.cookies) as again:
            kept = {"local": ["pear"], "redis": ["apple", "pear"]}[mode]
            assert again.post("/cart/pear").json() == {"cart": kept}
    finally:
        status = ctrl_c(demo, lines, reader)
    assert status == 0, "".join(lines)
    assert "demo: stopped" in "".join(lines)
    deadline = time.monotonic() + 5
    ports = [port, dashboard_port, *instance_ports, *([redis_port] if redis_port else [])]
    while any(listening(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in ports if listening(p)] == [], "something still listens"
    logs = re.search(r"logs in (\S+);", "".join(lines))
    assert logs and Path(logs.group(1)).parent == tmp_path
    assert not Path(logs.group(1)).exists(), "the demo left its directory behind"


def test_an_unknown_mode_is_one_clear_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo_cluster", "--mode", "nosuch", "--no-install"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ("demo: unknown mode 'nosuch': local, redis, hybrid, jwt or a "
                                   "store URL")


def test_the_demo_starts_again_at_once_on_the_same_ports(tmp_path: Path) -> None:
    """Ctrl-C, then the same command again: the connections the last run closed (the
    dashboard closes each one itself) wait in TIME-WAIT on its ports for a minute, which must
    not make the new run refuse them as "in use"."""
    require_binary("haproxy")
    port, dashboard_port = spare_ports(2)
    args = ["--port", str(port), "--dashboard-port", str(dashboard_port)]
    for run in ("first", "second"):
        demo, lines, ready, reader = start_demo(args, tmp_path)
        try:
            ready.wait(START_SECONDS)
            assert "Ctrl-C stops everything" in "".join(lines), f"{run} run:\n" + "".join(lines)
            for url in (f"http://127.0.0.1:{dashboard_port}/", f"http://127.0.0.1:{port}/"):
                assert httpx2.get(url, timeout=10).status_code == 200
        finally:
            status = ctrl_c(demo, lines, reader)
        assert status == 0, "".join(lines)
        if run == "first":
            assert time_wait_on(dashboard_port), "the first run left no TIME-WAIT to test"
