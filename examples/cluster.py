"""Three instances of an example shop behind a real load balancer, on spare loopback ports.

Shared by the one-command cluster demo (``python -m examples.demo_cluster``) and the
end-to-end and browser tests. Every process runs in its own process group, writes its output
to a log file in the cluster's directory and is killed (group and all) when the ``Cluster``
closes, also when the caller fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sessionkit import deploy
from sessionkit.deploy.nginx import render_nginx

ROOT = Path(__file__).resolve().parents[1]
INSTANCE_IDS = ("a", "b", "c")
COOKIE = "session"
START_SECONDS = 30
STOP_SECONDS = 15


class MissingProgram(RuntimeError):
    """A program the cluster runs (haproxy, nginx) is not installed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not installed (apt-get install -y --no-install-recommends "
                         f"{name})")
        self.name = name


def find_binary(name: str) -> str:
    """The path of ``name`` (also looked up in /usr/sbin), or ``MissingProgram``."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise MissingProgram(name)
    return found


# --- ports ------------------------------------------------------------------------------------
_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now. The trial bind uses
    SO_REUSEADDR, as every server started here does (HAProxy, nginx, uvicorn, gunicorn,
    redis-server, wsgiref): connections a stopped server left in TIME-WAIT do not hold the port,
    a listening socket does. The bind fails beside a listener on Linux; where it may succeed
    beside a wildcard listener (BSD, macOS), the refused connection attempt settles it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def spare_ports(count: int) -> list[int]:
    """Free loopback ports in 20000-29999, starting at a place that depends on the process id
    (so parallel runs rarely race for one), never the same port twice in one process."""
    found: list[int] = []
    with _ports_lock:
        port = 20000 + (os.getpid() * 7) % 9000
        while len(found) < count:
            port = port + 1 if port < 29999 else 20000
            if port not in _handed_out and _port_free(port):
                found.append(port)
                _handed_out.add(port)
    return found


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
        popen = subprocess.Popen(  # noqa: S603  (our own commands, no shell)
            list(argv), cwd=ROOT, env={**inherited, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Process(name, popen, log)


def answers(url: str) -> bool:
    """Whether anything serves ``url`` (any HTTP status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310  (http://127.0.0.1 only)
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_until_serving(process: Process, url: str) -> None:
    """Poll ``url`` until it answers at all (any status), or fail with the process's log."""
    deadline = time.monotonic() + START_SECONDS
    while not answers(url):
        if not process.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not serve {url} within "
                               f"{START_SECONDS}s:\n{process.log_tail()}")
        time.sleep(0.05)


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
        return [find_binary("haproxy"), "-db", "-f", str(config)]
    # as root the workers would run as nobody, who cannot enter a private temporary directory
    user = "user root; " if os.geteuid() == 0 else ""
    return [find_binary("nginx"), "-c", str(config), "-p", f"{runtime}/",
            "-g", f"daemon off; {user}"]


def render_lb(lb: str, instances: dict[str, str], cookie: str, listen: str,
              runtime: Path) -> str:
    if lb == "nginx":
        return render_nginx(instances, cookie, listen, runtime_dir=str(runtime))
    return deploy.render(lb, instances, cookie, listen)


def start_balancer(lb: str, instances: dict[str, str], directory: Path, cookie: str = COOKIE,
                   port: int | None = None) -> tuple[Process, str]:
    """``lb`` with the config ``sessionkit.deploy`` renders, serving; the caller stops it."""
    if port is None:
        (port,) = spare_ports(1)
    runtime = directory / f"{lb}-runtime"
    runtime.mkdir(exist_ok=True)
    config = directory / deploy.FILENAMES[lb]
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
    #: One secret for every instance, so any of them can verify any cookie.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: The balancer's port (a spare one when None).
    port: int | None = None
    instances: dict[str, Process] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    balancer: Process | None = None
    url: str = ""

    def start(self) -> None:
        find_binary(self.lb)
        ports = spare_ports(len(INSTANCE_IDS))
        for instance_id, port in zip(INSTANCE_IDS, ports, strict=True):
            # TMPDIR: the instance's lock file (one process per instance id) stays in this
            # cluster's directory, apart from other clusters with the same instance ids
            env = {"TMPDIR": str(self.directory), **self.env,
                   "SESSIONKIT_INSTANCE_ID": instance_id, "SESSIONKIT_SECRET_KEY": self.secret}
            self.instances[instance_id] = spawn(
                f"{self.framework}-{instance_id}", app_command(self.framework, port),
                self.directory, env)
            self.urls[instance_id] = f"http://127.0.0.1:{port}"
        for instance_id, process in self.instances.items():
            wait_until_serving(process, self.urls[instance_id] + "/whoami")
        addresses = {i: url.removeprefix("http://") for i, url in self.urls.items()}
        self.balancer, self.url = start_balancer(self.lb, addresses, self.directory,
                                                 port=self.port)

    def processes(self) -> list[Process]:
        return [*self.instances.values(), *([self.balancer] if self.balancer else [])]

    def close(self) -> None:
        for process in self.processes():
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail()}" for p in self.processes())


@contextlib.contextmanager
def cluster(lb: str, framework: str, directory: Path, **env: str) -> Iterator[Cluster]:
    started = Cluster(lb, framework, directory, env)
    try:
        started.start()
        yield started
    finally:
        started.close()
