"""Throwaway redis-server processes on spare loopback ports: a 3-node Cluster and a master
watched by one Sentinel. Started once per test session, stopped at its end, never left behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from examples.cluster import _port_free
from tests.support import require_binary

STARTUP_SECONDS = 30


def spare_ports(count: int, *, bus: bool = False) -> list[int]:
    """Free loopback ports (and their cluster-bus twins at +10000 when ``bus``)."""
    found: list[int] = []
    port = 20000 + (os.getpid() * 7) % 9000
    while len(found) < count:
        port += 1
        if port > 29999:
            port = 20000
        if _port_free(port) and (not bus or _port_free(port + 10000)):
            found.append(port)
    return found


def _binaries() -> tuple[str, str]:
    install = "apt-get install redis-server"
    return require_binary("redis-server", install), require_binary("redis-cli", install)


def _cli(cli: str, port: int, *args: str) -> str:
    done = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10, check=False)
    return done.stdout


def _wait(what: str, check: object) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {STARTUP_SECONDS}s")


class RedisProcesses:
    """The redis-server processes a fixture started, all stopped by ``stop()``."""

    def __init__(self, directory: Path) -> None:
        self.server, self.cli = _binaries()
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, port: int, *args: str, config: str | None = None) -> None:
        command = [self.server]
        if config is not None:
            path = self.directory / f"sentinel-{port}.conf"
            path.write_text(config)
            command += [str(path), "--sentinel"]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.directory), *args]
        log = open(self.directory / f"redis-{port}.log", "wb")  # noqa: SIM115
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        log.close()
        _wait(f"redis-server on port {port}", lambda: _cli(self.cli, port, "ping").strip()
              == "PONG")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[tuple[str, list[int]]]:
    """Three masters, no replicas: ``redis+cluster://127.0.0.1:<p1>,...``."""
    processes = RedisProcesses(directory)
    ports = spare_ports(3, bus=True)
    try:
        for port in ports:
            processes.start(port, "--cluster-enabled", "yes",
                            "--cluster-config-file", f"nodes-{port}.conf",
                            "--cluster-node-timeout", "5000")
        subprocess.run(
            [processes.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=30, check=True,
        )
        _wait("redis cluster", lambda: all(
            "cluster_state:ok" in _cli(processes.cli, p, "cluster", "info") for p in ports))
        nodes = ",".join(f"127.0.0.1:{p}" for p in ports)
        yield f"redis+cluster://{nodes}", ports
    finally:
        processes.stop()


@contextlib.contextmanager
def redis_sentinel(directory: Path) -> Iterator[tuple[str, int]]:
    """A master and one Sentinel watching it as ``mymaster``."""
    processes = RedisProcesses(directory)
    master, sentinel = spare_ports(2)
    try:
        processes.start(master)
        processes.start(sentinel, config=(
            f"sentinel monitor mymaster 127.0.0.1 {master} 1\n"
            "sentinel down-after-milliseconds mymaster 5000\n"
        ))
        _wait("redis sentinel", lambda: str(master) in _cli(
            processes.cli, sentinel, "sentinel", "get-master-addr-by-name", "mymaster"))
        yield f"redis+sentinel://127.0.0.1:{sentinel}/mymaster/0", master
    finally:
        processes.stop()


def flush(cli: str, ports: list[int]) -> None:
    for port in ports:
        _cli(cli, port, "flushall")
