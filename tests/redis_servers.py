"""Throwaway redis-server processes on spare loopback ports: Clusters (3 masters, with or without
a replica each) and Sentinel groups (a master, optionally a replica, one or three Sentinels).

Every wait is a bounded loop, every port is a spare loopback one, and every process a fixture
starts is gone when it ends, also when the test failed while a process was paused (SIGSTOP):
``RedisProcesses.stop`` continues paused processes before terminating them, and kills what does
not exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from examples.cluster import _port_free
from tests.support import require_binary

STARTUP_SECONDS = 30
#: Fault tests want failures noticed fast: a node silent this long is failing (Cluster: the
#: replica takes over about a second later; Sentinel: the master is subjectively down).
NODE_TIMEOUT_MS = 2000
ADMIN_TIMEOUT = 1.0

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def spare_ports(count: int, *, bus: bool = False) -> list[int]:
    """Free loopback ports (and their cluster-bus twins at +10000 when ``bus``), never the same
    port twice in one test run."""
    found: list[int] = []
    with _ports_lock:
        port = 20000 + (os.getpid() * 7) % 9000
        while len(found) < count:
            port = port + 1 if port < 29999 else 20000
            taken = port in _handed_out or (bus and port + 10000 in _handed_out)
            if not taken and _port_free(port) and (not bus or _port_free(port + 10000)):
                found.append(port)
                _handed_out.update((port, port + 10000) if bus else (port,))
    return found


def _binaries() -> tuple[str, str]:
    install = "apt-get install redis-server"
    return require_binary("redis-server", install), require_binary("redis-cli", install)


def _cli(cli: str, port: int, *args: str) -> str:
    done = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10, check=False)
    return done.stdout


def wait_until(what: str, check: Callable[[], object], seconds: float = STARTUP_SECONDS) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {seconds}s")


def admin(port: int) -> redis.Redis:
    """A short-timeout client for one server (a paused server makes it fail, not hang)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=ADMIN_TIMEOUT,
                       socket_connect_timeout=ADMIN_TIMEOUT, decode_responses=True)


def ask(port: int, *command: str) -> object:
    """One command to one server on a fresh connection."""
    client = admin(port)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


class RedisProcesses:
    """The redis-server processes a fixture started, by port; all stopped by ``stop()``."""

    def __init__(self, directory: Path) -> None:
        self.server, self.cli = _binaries()
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.by_port: dict[int, subprocess.Popen[bytes]] = {}
        self._commands: dict[int, list[str]] = {}
        self.paused: set[int] = set()

    def start(self, port: int, *args: str, config: str | None = None) -> None:
        command = [self.server]
        if config is not None:
            path = self.directory / f"sentinel-{port}.conf"
            path.write_text(config)
            command += [str(path), "--sentinel"]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.directory), *args]
        self._launch(port, command)

    def _launch(self, port: int, command: list[str]) -> None:
        with open(self.directory / f"redis-{port}.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.by_port[port] = process
        self._commands[port] = command
        wait_until(f"redis-server on port {port} answering PING",
                   lambda: _cli(self.cli, port, "ping").strip() == "PONG")

    def restart(self, port: int) -> None:
        """Start the server of ``port`` again, with the arguments it had (a killed one)."""
        self._launch(port, self._commands[port])

    def kill(self, port: int) -> None:
        """SIGKILL: no shutdown, no final write, as a crashed machine."""
        process = self.by_port[port]
        process.kill()
        process.wait(timeout=10)
        self.paused.discard(port)

    def pause(self, port: int) -> None:
        """SIGSTOP: the server hangs (connections open, nothing answered)."""
        self.by_port[port].send_signal(signal.SIGSTOP)
        self.paused.add(port)

    def resume(self, port: int) -> None:
        self.by_port[port].send_signal(signal.SIGCONT)
        self.paused.discard(port)

    def alive(self, port: int) -> bool:
        return self.by_port[port].poll() is None

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.paused.clear()


# --- Redis Cluster ---------------------------------------------------------------------------
def _cluster_args(port: int) -> tuple[str, ...]:
    return ("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # a replica may always take over, however long its master was silent
            "--cluster-replica-validity-factor", "0")


@dataclass
class ClusterNodes:
    """A running Cluster: its URL, its processes, and what the fault tests ask of it."""

    url: str
    ports: list[int]
    processes: RedisProcesses
    replicas: int

    def roles(self) -> dict[int, tuple[str, int | None]]:
        """``{port: ("master", None) | ("slave", master port)}`` as a live node sees it."""
        for port in self.ports:
            if not self.processes.alive(port) or port in self.processes.paused:
                continue
            with contextlib.suppress(redis.exceptions.RedisError):
                return _parse_roles(str(ask(port, "CLUSTER", "NODES")))
        raise RuntimeError("no node of the cluster answers")

    def masters(self) -> list[int]:
        return sorted(p for p, (role, _) in self.roles().items() if role == "master")

    def replica_of(self, master: int) -> int:
        [replica] = [p for p, (role, of) in self.roles().items() if of == master]
        return replica

    def master_of_key(self, key: str) -> int:
        slot = int(str(ask(self.ports[0], "CLUSTER", "KEYSLOT", key)))
        for entry in ask(self._live(), "CLUSTER", "SLOTS"):  # type: ignore[attr-defined]
            start, end, master = entry[0], entry[1], entry[2]
            if start <= slot <= end:
                return int(master[1])
        raise RuntimeError(f"slot {slot} is not covered")

    def _live(self) -> int:
        return next(p for p in self.ports
                    if self.processes.alive(p) and p not in self.processes.paused)

    def state(self, port: int) -> str:
        info = str(ask(port, "CLUSTER", "INFO"))
        return info.split("cluster_state:", 1)[1].split()[0]

    def healthy(self) -> bool:
        """Every node up and saying ``ok``, each master with its replicas linked and in sync."""
        if any(not self.processes.alive(p) or p in self.processes.paused for p in self.ports):
            return False
        if any(self.state(p) != "ok" for p in self.ports):
            return False
        roles = self.roles()
        masters = [p for p, (role, _) in roles.items() if role == "master"]
        if len(masters) != 3:
            return False
        for port, (role, of) in roles.items():
            if role == "slave":
                info = admin(port).info("replication")
                if info.get("master_link_status") != "up" or int(info["master_port"]) != of:
                    return False
        return all(sum(1 for _, of in roles.values() if of == m) == self.replicas
                   for m in masters)

    def heal(self) -> None:
        """Back to a healthy cluster after a fault: paused nodes continued, killed ones started
        again (they rejoin as replicas), failover guards lifted, data flushed."""
        for port in list(self.processes.paused):
            self.processes.resume(port)
        for port in self.ports:
            if not self.processes.alive(port):
                self.processes.restart(port)
        for port in self.ports:
            ask(port, "CONFIG", "SET", "cluster-replica-no-failover", "no")
        wait_until("a healthy cluster", self.healthy, 60)
        for master in self.masters():
            ask(master, "FLUSHALL")


def _parse_roles(nodes: str) -> dict[int, tuple[str, int | None]]:
    ids: dict[str, int] = {}
    rows = [line.split() for line in nodes.splitlines() if line.strip()]
    for row in rows:
        ids[row[0]] = int(row[1].split("@")[0].rsplit(":", 1)[1])
    roles: dict[int, tuple[str, int | None]] = {}
    for row in rows:
        port, flags = ids[row[0]], row[2].split(",")
        if "fail" in flags or "noaddr" in flags:
            continue
        if "master" in flags:
            roles[port] = ("master", None)
        elif "slave" in flags:
            roles[port] = ("slave", ids.get(row[3]))
    return roles


@contextlib.contextmanager
def redis_cluster(directory: Path, *, replicas: int = 0) -> Iterator[ClusterNodes]:
    """Three masters, each with ``replicas`` replicas:
    ``redis+cluster://127.0.0.1:<p1>,...``."""
    processes = RedisProcesses(directory)
    ports = spare_ports(3 * (1 + replicas), bus=True)
    try:
        for port in ports:
            processes.start(port, *_cluster_args(port))
        subprocess.run(
            [processes.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, timeout=30, check=True,
        )
        nodes = ",".join(f"127.0.0.1:{p}" for p in ports)
        cluster = ClusterNodes(f"redis+cluster://{nodes}", ports, processes, replicas)
        wait_until("a healthy redis cluster", cluster.healthy)
        yield cluster
    finally:
        processes.stop()


# --- Sentinel --------------------------------------------------------------------------------
SERVICE = "mymaster"


@dataclass
class SentinelGroup:
    """A master watched by Sentinels, with or without a replica."""

    url: str
    data_ports: list[int]
    sentinel_ports: list[int]
    processes: RedisProcesses

    @property
    def master(self) -> int:
        """The master's port, as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.exceptions.RedisError):
                _, master = ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME",  # type: ignore[misc]
                                SERVICE)
                return int(master)
        raise RuntimeError("no Sentinel answers")

    def healthy(self) -> bool:
        """Every process up; every Sentinel names the same master, knows the others and the
        replicas; the master is a master and every replica is linked to it."""
        if any(not self.processes.alive(p) for p in self.data_ports + self.sentinel_ports):
            return False
        named = {int(ask(p, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])  # type: ignore[index]
                 for p in self.sentinel_ports}
        if len(named) != 1:
            return False
        [master] = named
        if admin(master).info("replication")["role"] != "master":
            return False
        replicas = [p for p in self.data_ports if p != master]
        for port in replicas:
            info = admin(port).info("replication")
            if info.get("master_link_status") != "up" or int(info["master_port"]) != master:
                return False
        for port in self.sentinel_ports:
            watcher = admin(port)
            state = watcher.sentinel_master(SERVICE)
            if state["is_sdown"] or state["is_odown"]:
                return False
            if int(state["num-other-sentinels"]) != len(self.sentinel_ports) - 1:
                return False
            up = [r for r in watcher.sentinel_slaves(SERVICE) if not r["is_sdown"]]
            if len(up) < len(replicas):
                return False
        return True

    def heal(self) -> None:
        """Back to a healthy group after a fault (a killed server is started again and the
        Sentinels make it a replica of the current master), data flushed."""
        for port in list(self.processes.paused):
            self.processes.resume(port)
        for port in self.data_ports + self.sentinel_ports:
            if not self.processes.alive(port):
                self.processes.restart(port)
        master = self.master
        for port in self.data_ports:  # a restarted old master: no need to wait for Sentinel
            if port != master and admin(port).info("replication")["role"] == "master":
                ask(port, "REPLICAOF", "127.0.0.1", str(master))
        wait_until("a healthy sentinel group", self.healthy, 60)
        ask(self.master, "FLUSHALL")
        wait_until("the flush replicated", lambda: all(
            admin(p).dbsize() == 0 for p in self.data_ports))


def _sentinel_config(master: int, quorum: int) -> str:
    return (f"sentinel monitor {SERVICE} 127.0.0.1 {master} {quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n")


@contextlib.contextmanager
def redis_sentinel(directory: Path, *, replicas: int = 0, sentinels: int = 1,
                   server_args: tuple[str, ...] = ()) -> Iterator[SentinelGroup]:
    """A master (plus ``replicas`` replicas, each started with ``server_args``) watched by
    ``sentinels`` Sentinels (a majority is the quorum):
    ``redis+sentinel://127.0.0.1:<s1>,.../mymaster/0``."""
    processes = RedisProcesses(directory)
    data = spare_ports(1 + replicas)
    watchers = spare_ports(sentinels)
    try:
        processes.start(data[0], *server_args)
        for port in data[1:]:
            processes.start(port, "--replicaof", "127.0.0.1", str(data[0]), *server_args)
        for port in watchers:
            processes.start(port, config=_sentinel_config(data[0], sentinels // 2 + 1))
        hosts = ",".join(f"127.0.0.1:{p}" for p in watchers)
        group = SentinelGroup(f"redis+sentinel://{hosts}/{SERVICE}/0", data, watchers,
                              processes)
        wait_until("a healthy sentinel group", group.healthy)
        yield group
    finally:
        processes.stop()


def flush(cli: str, ports: list[int]) -> None:
    for port in ports:
        _cli(cli, port, "flushall")
