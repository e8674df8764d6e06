"""sessionkit against its peers, side by side, on this machine, in one run.

    python3 dev.py bench            (installs the peers into .venv, then runs this)
    python bench/run.py [--seconds 1.0] [--requests 3000] [--quick] [--skip-servers]

Each comparison runs the same cart app (bench/apps.py: 90% reads, 10% writes, a 1 KB session,
100 clients with their own cookies) on sessionkit and on a peer, alternating rounds so that
machine noise hits both alike, at two levels: in-process (the app called directly: per-request
CPU) and over real servers on loopback (gunicorn / uvicorn, keep-alive connections). Redis
runs privately (a throwaway redis-server) so that it counts only the bench's commands.
PostgreSQL comes from ``BENCH_POSTGRES_URL`` (default: the local ``test`` database); its rows
are skipped with a note when it is unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import platform
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import apps, processes
from bench import redis_commands as redis_commands_sent
from bench.workload import InProcess, Misrouted, OverHttp, Result, plan

CLIENTS = 100
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Pair:
    mode: str
    framework: str
    ours: str
    peer: str
    #: sessionkit's requests/s over the peer's must reach this (None: no target).
    target: float | None
    needs: str = ""
    #: Two instances, every request sent to the one its cookie does not name.
    misrouted: bool = False

    @property
    def label(self) -> str:
        return self.ours + (" (misrouted)" if self.misrouted else "")

    @property
    def is_async(self) -> bool:
        return self.framework == "fastapi"


PAIRS = [
    Pair("shared", "flask", "sessionkit-redis", "flask-session-redis", 1.5, "redis"),
    Pair("shared", "fastapi", "sessionkit-redis", "starsessions-redis", 1.5, "redis"),
    Pair("client", "fastapi", "sessionkit-jwt", "starlette-cookie", 1.0),
    Pair("client", "flask", "sessionkit-jwt", "flask-cookie", 1.0),
    # What encryption costs: the client cannot read its cookie (no target: it is a price).
    Pair("client", "fastapi", "sessionkit-jwt-encrypted", "sessionkit-jwt", None),
    Pair("client", "flask", "sessionkit-jwt-encrypted", "sessionkit-jwt", None),
    Pair("local", "flask", "sessionkit-memory", "none", 0.95),
    Pair("local", "fastapi", "sessionkit-memory", "none", 0.95),
    Pair("shared", "flask", "sessionkit-postgresql", "flask-session-sqlalchemy", None,
         "postgresql"),
    Pair("hybrid", "flask", "sessionkit-hybrid", "none", 0.9, "redis"),
    Pair("hybrid", "fastapi", "sessionkit-hybrid", "none", 0.9, "redis"),
    Pair("hybrid", "flask", "sessionkit-hybrid", "sessionkit-redis", 1.0, "redis", True),
    Pair("hybrid", "fastapi", "sessionkit-hybrid", "sessionkit-redis", 1.0, "redis", True),
    Pair("hybrid", "flask", "sessionkit-hybrid", "sessionkit-redis", None, "redis"),
    Pair("hybrid", "fastapi", "sessionkit-hybrid", "sessionkit-redis", None, "redis"),
]


@dataclass
class Row:
    level: str
    pair: Pair
    ours: Result
    peer: Result
    ours_rate: float
    peer_rate: float

    @property
    def ratio(self) -> float:
        return self.ours_rate / self.peer_rate if self.peer_rate else 0.0

    @property
    def verdict(self) -> str:
        if self.pair.target is None:
            return ""
        return "met" if self.ratio >= self.pair.target else "MISSED"


# --- one comparison -----------------------------------------------------------------------------
def compare_in_process(pair: Pair, urls: dict[str, str], seconds: float, rounds: int) -> Row:
    drivers: list[InProcess] = []
    for name in (pair.ours, pair.peer):
        variant = f"{pair.framework}/{name}"
        if pair.misrouted:
            instances = {i: apps.build(variant, urls, instance=i) for i in ("a", "b")}
            drivers.append(Misrouted(instances, pair.is_async, CLIENTS))
        else:
            drivers.append(InProcess(apps.build(variant, urls), pair.is_async, CLIENTS))
    try:
        for driver, name in zip(drivers, (pair.ours, pair.peer), strict=True):
            driver.seed(sessions=name != "none")
            driver.run(plan(500, CLIENTS))  # warm-up: imports, pools, caches
        sizes = [max(200, int(500 * seconds / max(d.run(plan(500, CLIENTS)).seconds, 1e-6)))
                 for d in drivers]
        return _alternate("in-process", pair, drivers, sizes, rounds)
    finally:
        for driver in drivers:
            driver.close()


def compare_over_http(pair: Pair, urls: dict[str, str], requests: int, rounds: int) -> Row:
    kind = "asgi" if pair.is_async else "wsgi"
    with contextlib.ExitStack() as stack:
        drivers = []
        for name in (pair.ours, pair.peer):
            port = stack.enter_context(
                processes.app_server(kind, f"{pair.framework}/{name}", urls))
            driver = OverHttp(port, CLIENTS, connections=8)
            driver.seed(sessions=name != "none")
            driver.run(plan(300, CLIENTS))
            drivers.append(driver)
        size = max(100, requests // rounds)
        return _alternate("servers", pair, drivers, [size, size], rounds)


def _alternate(level: str, pair: Pair, drivers: list[Any], sizes: list[int],
               rounds: int) -> Row:
    """Rounds of A then B; each side's rate is the median of its rounds."""
    totals = [Result(), Result()]
    rates: list[list[float]] = [[], []]
    for number in range(rounds):
        for side in (0, 1):
            result = drivers[side].run(plan(sizes[side], CLIENTS, start=number * sizes[side]))
            if result.errors:
                raise RuntimeError(f"{level} {pair.framework}/"
                                   f"{(pair.ours, pair.peer)[side]}: {result.errors} requests "
                                   f"failed")
            totals[side].add(result)
            rates[side].append(result.rate)
    return Row(level, pair, totals[0], totals[1], statistics.median(rates[0]),
               statistics.median(rates[1]))


# --- Redis commands per request -----------------------------------------------------------------
def redis_commands(urls: dict[str, str]) -> list[tuple[str, float, float, float]]:
    """Commands per read, per write and per request of the 90/10 mix, as the clients sent
    them (``bench.redis_commands``)."""
    import redis

    probe = redis.Redis.from_url(urls["redis"])
    found = []
    try:
        redis_commands_sent.start(probe)
        for name in ("flask/sessionkit-redis", "fastapi/sessionkit-redis",
                     "flask/sessionkit-hybrid", "fastapi/sessionkit-hybrid",
                     "flask/flask-session-redis", "fastapi/starsessions-redis"):
            driver = InProcess(apps.build(name, urls), name.startswith("fastapi"), CLIENTS)
            try:
                driver.seed()
                counts = []
                for steps in ([(n % CLIENTS, "GET", "/cart") for n in range(200)],
                              [(n % CLIENTS, "POST", f"/cart/c{n}") for n in range(200)],
                              plan(1000, CLIENTS)):
                    redis_commands_sent.sent(probe)  # from here
                    driver.run(steps)
                    counts.append(redis_commands_sent.sent(probe) / len(steps))
                found.append((name, *counts))
            finally:
                driver.close()
    finally:
        probe.close()
    return found


def profile(variant: str, urls: dict[str, str], requests: int) -> int:
    """Where one app's time goes, in-process, 90/10 workload: pyinstrument's call tree."""
    from pyinstrument import Profiler

    driver = InProcess(apps.build(variant, urls), variant.startswith("fastapi"), CLIENTS)
    try:
        driver.seed(sessions=not variant.endswith("/none"))
        driver.run(plan(500, CLIENTS))
        profiler = Profiler(interval=0.0001)
        profiler.start()
        result = driver.run(plan(requests * 3, CLIENTS, start=500))
        profiler.stop()
    finally:
        driver.close()
    print(f"{variant}: {result.rate:.0f} requests/s under the profiler")
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


# --- reporting ----------------------------------------------------------------------------------
def versions(urls: dict[str, str]) -> list[str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} "
             f"{platform.release()}, Python {platform.python_version()}"]
    packages = ["sessionkit", "flask", "fastapi", "starlette", "flask-session", "starsessions",
                "flask-sqlalchemy", "redis", "sqlalchemy", "psycopg", "pyjwt", "gunicorn",
                "uvicorn"]
    lines.append("packages: " + ", ".join(f"{p} {version(p)}" for p in packages))
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(urls["redis"])
        lines.append(f"redis-server {client.info('server')['redis_version']} (private, "
                     f"loopback)")
        client.close()
    if urls.get("postgresql"):
        with contextlib.suppress(Exception):
            import sqlalchemy as sa

            engine = sa.create_engine(urls["postgresql"])
            with engine.connect() as connection:
                server = connection.execute(sa.text("SHOW server_version")).scalar()
            engine.dispose()
            lines.append(f"postgresql {server} (loopback)")
    return lines


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    header = (f"{'mode':<7} {'framework':<8} {'sessionkit':<30} {'peer':<25} {'req/s':>8} "
              f"{'peer req/s':>10} {'ratio':>6} {'target':>7} {'p50/p99 µs':>13} "
              f"{'peer p50/p99':>13}")
    print(header)
    print("-" * len(header))
    for row in rows:
        pair = row.pair
        target = f">={pair.target:.2f}" if pair.target is not None else "-"
        ours = f"{row.ours.percentile(0.5):.0f}/{row.ours.percentile(0.99):.0f}"
        peer = f"{row.peer.percentile(0.5):.0f}/{row.peer.percentile(0.99):.0f}"
        print(f"{pair.mode:<7} {pair.framework:<8} {pair.label:<30} {pair.peer:<25} "
              f"{row.ours_rate:>8.0f} {row.peer_rate:>10.0f} {row.ratio:>6.2f} {target:>7} "
              f"{ours:>13} {peer:>13} {row.verdict}")


def postgres_url() -> str | None:
    url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        print(f"note: PostgreSQL rows skipped: {url} unreachable ({type(exc).__name__})")
        return None
    return url


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    with processes.private_redis() as redis_url:
        urls = {"redis": redis_url}
        sql = postgres_url()
        if sql:
            urls["postgresql"] = sql
        try:
            yield urls
        finally:
            # The private Redis stops next: hybrid engines still running would report it.
            logging.getLogger("sessionkit").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="in-process: seconds per round per side (default 1.0)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (default 5)")
    parser.add_argument("--requests", type=int, default=3000,
                        help="over servers: requests per side (default 3000)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny rounds, numbers not meaningful")
    parser.add_argument("--skip-servers", action="store_true",
                        help="in-process comparisons only")
    parser.add_argument("--profile", metavar="VARIANT",
                        help="instead: profile one app in-process with pyinstrument, e.g. "
                             "flask/sessionkit-redis (variants: bench/apps.py)")
    args = parser.parse_args(argv)
    if args.profile:
        with services() as urls:
            return profile(args.profile, urls, args.requests)
    if args.quick:
        args.seconds, args.rounds, args.requests = 0.05, 2, 400
    with services() as urls:
        for line in versions(urls):
            print(line)
        pairs = [p for p in PAIRS if not p.needs or p.needs in urls]
        rows = [compare_in_process(p, urls, args.seconds, args.rounds) for p in pairs]
        print_rows("in-process (the app called directly; per-request CPU)", rows)
        print("\nRedis commands per request (sent by the clients: bench/redis_commands.py)")
        print(f"{'app':<30} {'read':>6} {'write':>6} {'90/10 mix':>10}")
        for name, read, write, mix in redis_commands(urls):
            print(f"{name:<30} {read:>6.2f} {write:>6.2f} {mix:>10.2f}")
        if not args.skip_servers:
            served = [compare_over_http(p, urls, args.requests, args.rounds) for p in pairs
                      if not p.misrouted]
            print_rows("over real servers on loopback (gunicorn gthread / uvicorn, 1 worker, "
                       "8 keep-alive connections)", served)
    return 0


if __name__ == "__main__":
    sys.exit(main())
