"""sessionkit at scale: what a million sessions cost in each store, and whether requests slow
down when the store is large. Run:

    python bench/scale.py [--sessions 1000000] [--quick] [--only redis,memory,postgres]

- Redis: a private redis-server (spare loopback port) is filled with N logged-in sessions
  (~1 KB: a user and a 30-item cart) in sessionkit's own record format, through
  ``RedisStore.put_records``; bytes per session come from ``INFO memory``. A second private
  server holds 1,000 such sessions, and GET /cart on an in-process Flask app and FastAPI app
  is timed against both, in alternating rounds, with real cookies of existing sessions
  (Redis's keyspace hits prove each timed request found its session).
- PostgreSQL (``SESSIONKIT_BENCH_POSTGRES_URL``, table ``sessionkit_scale``, dropped at the
  end): N expired rows are inserted server-side, ``sessionkit gc URL --batch-size 1000`` runs
  as a subprocess while 4 writer threads keep updating live sessions through a Flask app, and
  the writers' latency before and during gc is compared.
- Memory store: a child process fills ``memory://`` with N sessions through the store API and
  reports its RSS growth per session.

``--quick`` (20,000 sessions, shorter timings) is the CI smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import asgi_runner, wsgi_runner
from servers import redis_server

from sessionkit.codecs import encode_value
from sessionkit.ids import SessionIds
from sessionkit.stores.base import Create, Record

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
INSTANCE = "bench"
IDLE = 14 * 86400.0
ABSOLUTE = 30 * 86400.0
SMALL = 1000  # sessions in the reference store
CART_ITEMS = 30
_MARK = "Z" * 20  # replaced by 20 random characters per session
_CART_TEMPLATE = encode_value("cart", [f"item-{n:03d}-{_MARK}" for n in range(CART_ITEMS)])
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLE = "sessionkit_scale"
WRITERS = 4


# --- sessions -----------------------------------------------------------------------------
def session_fields(n: int) -> dict[str, str]:
    """The stored fields of a logged-in user's session with a 30-item cart (~1 KB), every
    text its own string (a real store never shares them between sessions)."""
    return {
        "user": encode_value("user", {"id": n, "name": f"user-{n:07d}"}),
        "cart": _CART_TEMPLATE.replace(_MARK, secrets.token_hex(10)),
    }


def session_record(n: int, now: float) -> Record:
    return Record(session_fields(n), now, now + IDLE, now, f"user-{n:07d}", 1, INSTANCE)


def payload_bytes() -> int:
    """Key and value bytes of one session's data: what any store must keep at least."""
    return sum(len(k) + len(v) for k, v in session_fields(0).items())


def cookie(token: str) -> str:
    """The Cookie header of a session id (server-side cookies are ``<id>.<instance>``)."""
    return f"session={token}.{INSTANCE}"


# --- results ------------------------------------------------------------------------------
@dataclass
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def render(self) -> str:
        cells = [self.columns, *[tuple(_cell(v) for v in row) for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title]
        for number, row in enumerate(cells):
            lines.append("  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(
                    zip(row, widths, strict=True))).rstrip())
            if number == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return [f"CPU: {cpu}, {os.cpu_count()} cores, {memory} RAM",
            f"OS: {platform.platform()}",
            f"Python: {platform.python_version()}",
            load_average()]


def load_average() -> str:
    """Other work on the machine inflates every timing: say how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f} {five:.2f} {fifteen:.2f}"


# --- Redis ----------------------------------------------------------------------------------
def redis_fill(url: str, count: int, batch: int, sample: int) -> tuple[list[str], float]:
    """Write ``count`` sessions through ``RedisStore.put_records`` (one pipeline per batch);
    return cookies of ``sample`` of them, spread over the whole range, and the seconds taken."""
    from sessionkit.stores.redis import RedisStore

    store = RedisStore.from_url(url)
    ids = SessionIds([KEY.encode()])
    every = max(1, count // sample)
    cookies = []
    now = time.time()
    started = time.perf_counter()
    try:
        for start in range(0, count, batch):
            items = []
            for n in range(start, min(count, start + batch)):
                token, key = ids.new()
                if n % every == 0 and len(cookies) < sample:
                    cookies.append(cookie(token))
                items.append((key, session_record(n, now)))
            written = store.put_records(items, ABSOLUTE)
            if written != len(items):
                raise RuntimeError(f"put_records wrote {written} of {len(items)} sessions")
    finally:
        store.close()
    return cookies, time.perf_counter() - started


def flask_cart_app(url: str) -> Any:
    from flask import Flask, session

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    SessionKit(app, store=url, secret_key=KEY, instance_id=INSTANCE)

    @app.get("/cart")
    def cart() -> Any:
        return {"n": len(session.get("cart", []))}

    @app.post("/login/<int:n>")
    def login(n: int) -> Any:
        session.user_id = f"user-{n:07d}"
        session["user"] = {"id": n, "name": f"user-{n:07d}"}
        session["cart"] = [f"item-{i:03d}-{secrets.token_hex(10)}" for i in range(CART_ITEMS)]
        return {"n": CART_ITEMS}

    @app.post("/cart/<int:slot>")
    def replace(slot: int) -> Any:
        items = session.get("cart", [])
        if not items:
            return {"error": "no session"}, 404
        items[slot % len(items)] = f"item-{slot:03d}-{secrets.token_hex(10)}"
        session["cart"] = items
        return {"n": len(items)}

    return app


def fastapi_cart_app(url: str) -> Any:
    from fastapi import Depends, FastAPI

    from sessionkit.asgi import SessionMiddleware
    from sessionkit.fastapi import get_session

    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=url, secret_key=KEY, instance_id=INSTANCE)

    async def cart(session: Any = Depends(get_session)) -> dict[str, int]:  # noqa: B008
        return {"n": len(session.get("cart", []))}

    app.get("/cart")(cart)

    return app


def check_carts(framework: str, app: Any, cookies: list[str]) -> None:
    """Real requests with a few of the cookies: each must find its 30-item cart."""
    if framework == "flask":
        client: Any = app.test_client(use_cookies=False)
        replies = [client.get("/cart", headers={"Cookie": c}).get_json() for c in cookies]
    else:
        from starlette.testclient import TestClient

        with TestClient(app) as client:
            replies = [client.get("/cart", headers={"Cookie": c}).json() for c in cookies]
    wrong = [r for r in replies if r != {"n": CART_ITEMS}]
    if wrong:
        raise RuntimeError(f"{framework}: {len(wrong)} of {len(cookies)} cookies did not find "
                           f"their cart: {wrong[0]}")


def timed_round(framework: str, runners: list[Any], loop: asyncio.AbstractEventLoop,
                requests: int) -> list[float]:
    """Microseconds of each of ``requests`` requests, cycling through the runners."""
    clock = time.perf_counter_ns
    order = [runners[i % len(runners)] for i in range(requests)]
    random.shuffle(order)
    if framework == "flask":
        samples = []
        for run in order:
            start = clock()
            run()
            samples.append((clock() - start) / 1000)
        return samples

    async def batch() -> list[float]:
        found = []
        for run in order:
            start = clock()
            await run()
            found.append((clock() - start) / 1000)
        return found

    return loop.run_until_complete(batch())


def redis_info(client: Any, section: str) -> dict[str, Any]:
    info: dict[str, Any] = client.info(section)
    return info


def redis_latency(stores: dict[int, tuple[str, list[str], Any]], rounds: int, requests: int,
                  loop: asyncio.AbstractEventLoop) -> Table:
    """GET /cart against each store size, rounds alternating between sizes."""
    table = Table("GET /cart, in-process app on a private Redis (µs per request)",
                  ("app", "sessions in Redis", "requests", "p50 µs", "p99 µs", "mean µs",
                   "Redis µs/HGETALL"))
    for framework, make, runner in (("flask", flask_cart_app, wsgi_runner),
                                    ("fastapi", fastapi_cart_app, asgi_runner)):
        prepared = {}
        for size, (url, cookies, client) in stores.items():
            app = make(url)
            check_carts(framework, app, cookies[:20])
            runners = [runner(app, "/cart", c) for c in cookies]
            timed_round(framework, runners, loop, len(runners))  # warm: connections, id cache
            client.config_resetstat()
            prepared[size] = (runners, client, [])
        for _ in range(rounds):
            for _size, (runners, _client, samples) in prepared.items():
                samples.extend(timed_round(framework, runners, loop, requests))
        for size, (_runners, client, samples) in prepared.items():
            stats = redis_info(client, "stats")
            hits, misses = stats["keyspace_hits"], stats["keyspace_misses"]
            if misses or hits != len(samples):
                raise RuntimeError(f"{framework} with {size} sessions: {hits} keyspace hits and "
                                   f"{misses} misses for {len(samples)} requests")
            calls = redis_info(client, "commandstats").get("cmdstat_hgetall", {})
            table.rows.append((framework, size, len(samples), percentile(samples, 0.5),
                               percentile(samples, 0.99), statistics.fmean(samples),
                               float(calls.get("usec_per_call", 0.0))))
    return table


def memory_usage(client: Any, prefix: str, kind: str, limit: int = 200) -> tuple[float, str]:
    """Mean ``MEMORY USAGE`` of up to ``limit`` keys of one type under a prefix, and their
    encoding."""
    keys = []
    for key in client.scan_iter(match=prefix + "*", count=1000, _type=kind):
        keys.append(key)
        if len(keys) >= limit:
            break
    sizes = [client.memory_usage(k, samples=0) for k in keys]
    return statistics.fmean(sizes), client.object("encoding", keys[0]).decode()


def bench_redis(count: int, quick: bool) -> tuple[list[Table], list[str]]:
    import redis

    sample = 300 if quick else 1000
    rounds, requests = (3, 400) if quick else (5, 2000)
    notes = []
    with redis_server() as big_port, redis_server() as small_port:
        big_url, small_url = (f"redis://127.0.0.1:{p}/0" for p in (big_port, small_port))
        big, small = redis.Redis(port=big_port), redis.Redis(port=small_port)
        notes.append(f"Redis: {big.info('server')['redis_version']}, "
                     f"{big.info('memory')['mem_allocator']}")
        before = redis_info(big, "memory")["used_memory"]
        big_cookies, seconds = redis_fill(big_url, count, 2000, sample)
        memory = redis_info(big, "memory")
        used = memory["used_memory"] - before
        small_cookies, _ = redis_fill(small_url, SMALL, 1000, sample)
        hash_bytes, hash_encoding = memory_usage(big, "sessionkit:", "hash")
        set_bytes, set_encoding = memory_usage(big, "sessionkit:user:", "set")
        listpack_bytes = listpack_session_bytes(small)
        sizes = Table(f"Redis {count:,} sessions (~1 KB each, one user index per session)",
                      ("measurement", "value", "unit"))
        sizes.rows += [
            ("fill rate (RedisStore.put_records, 2,000 per pipeline)", count / seconds,
             "sessions/s"),
            ("bytes per session (INFO used_memory growth / N)", used / count, "bytes"),
            ("session payload (keys + JSON values)", payload_bytes(), "bytes"),
            (f"MEMORY USAGE of a session hash ({hash_encoding})", hash_bytes, "bytes"),
            ("MEMORY USAGE, same hash as listpack (hash-max-listpack-value 2048)",
             listpack_bytes, "bytes"),
            (f"MEMORY USAGE of a user index ({set_encoding} set)", set_bytes, "bytes"),
            ("used_memory_rss after fill", memory["used_memory_rss"] / 2**20, "MiB"),
        ]
        loop = asyncio.new_event_loop()
        try:
            latency = redis_latency({SMALL: (small_url, small_cookies, small),
                                     count: (big_url, big_cookies, big)}, rounds, requests, loop)
        finally:
            loop.close()
        big.close()
        small.close()
    return [sizes, latency], notes


def listpack_session_bytes(client: Any) -> float:
    """``MEMORY USAGE`` of sessions written while Redis keeps hashes with values up to 2 KB
    as a listpack (the default limit, 64 bytes, makes a 1 KB cart a hashtable)."""
    from sessionkit.stores.redis import RedisStore

    limit = client.config_get("hash-max-listpack-value")["hash-max-listpack-value"]
    client.config_set("hash-max-listpack-value", "2048")
    port = client.connection_pool.connection_kwargs["port"]
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0?key_prefix=listpack:")
    try:
        ids = SessionIds([KEY.encode()])
        now = time.time()
        store.put_records([(ids.new()[1], session_record(n, now)) for n in range(100)], ABSOLUTE)
        size, encoding = memory_usage(client, "listpack:", "hash")
        if encoding != "listpack":
            raise RuntimeError(f"expected listpack hashes, found {encoding}")
        for key in client.scan_iter(match="listpack:*", count=1000):
            client.delete(key)
        return size
    finally:
        client.config_set("hash-max-listpack-value", limit)
        store.close()


# --- memory store ---------------------------------------------------------------------------
def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory_child(count: int) -> None:
    """In a fresh process: fill ``memory://`` with ``count`` sessions; print JSON."""
    import gc

    from sessionkit.stores import open_store
    from sessionkit.stores.memory import MemoryStore

    store = open_store(f"memory://?max_sessions={count + 1000}")
    assert isinstance(store, MemoryStore)
    ids = SessionIds([KEY.encode()])
    now = time.time()
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    for n in range(count):
        store.execute(Create(ids.new()[1], session_record(n, now), ABSOLUTE))
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    if len(store) != count or store.evicted_live:
        raise RuntimeError(f"memory store holds {len(store)} of {count} sessions")
    print(json.dumps({"before": before, "after": after, "seconds": seconds}))


def bench_memory(count: int, timeout: float) -> Table:
    done = subprocess.run([sys.executable, __file__, "--memory-child", str(count)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"memory store child failed: {done.stderr[-2000:]}")
    found = json.loads(done.stdout)
    table = Table(f"memory:// {count:,} sessions (child process)", ("measurement", "value",
                                                                     "unit"))
    table.rows += [
        ("fill rate (MemoryStore Create)", count / found["seconds"], "sessions/s"),
        ("RSS per session (VmRSS growth / N)", (found["after"] - found["before"]) / count,
         "bytes"),
        ("session payload (keys + JSON values)", payload_bytes(), "bytes"),
        ("RSS after fill", found["after"] / 2**20, "MiB"),
    ]
    return table


# --- PostgreSQL -------------------------------------------------------------------------------
def with_table(url: str) -> str:
    return url + ("&" if "?" in url else "?") + f"table={TABLE}"


def postgres_fill_expired(connection: Any, count: int, now: float) -> None:
    """``count`` expired rows in the store's row format, made by the server in one statement:
    ids spread like store keys, expiries spread over the ten days before the last hour."""
    import sqlalchemy as sa

    from sessionkit.stores.sql import encode_fields

    data = encode_fields({
        "user": encode_value("user", {"id": 1234567, "name": "user-1234567"}),
        "cart": _CART_TEMPLATE,
    })
    connection.execute(sa.text(f"""
        INSERT INTO {TABLE}
            (id, data, created_at, expires_at, accessed_at, user_id, version, format, instance)
        SELECT substr(md5(g::text) || md5((-g)::text), 1, 22),
               replace(replace(:data, :mark, substr(md5('c' || g), 1, 20)),
                       '1234567', lpad(g::text, 7, '0')),
               e - :idle, e, e - :idle, 'user-' || lpad(g::text, 7, '0'), 1, 1, :instance
        FROM (SELECT g, :now - 3600 - (:count - g) * (864000.0 / :count) AS e
              FROM generate_series(1, :count) AS g) AS expired
    """), {"data": data, "mark": _MARK, "idle": IDLE, "now": now, "count": count,
           "instance": INSTANCE})


class Writers:
    """Threads that keep changing carts of live sessions through a Flask app, each on its own
    sessions, timing every request."""

    def __init__(self, app: Any, cookies: list[str], threads: int, pause: float) -> None:
        self.app, self.cookies, self.threads, self.pause = app, cookies, threads, pause
        self.samples: list[tuple[float, float, int]] = []  # (start, ms, status)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: list[threading.Thread] = []

    def _write(self, mine: list[str]) -> None:
        client = self.app.test_client(use_cookies=False)
        rng = random.Random()
        found = []
        while not self._stop.is_set():
            start = time.perf_counter()
            reply = client.post(f"/cart/{rng.randrange(CART_ITEMS)}",
                                headers={"Cookie": rng.choice(mine)})
            found.append((start, (time.perf_counter() - start) * 1000, reply.status_code))
            self._stop.wait(self.pause)
        with self._lock:
            self.samples.extend(found)

    def __enter__(self) -> Writers:
        for n in range(self.threads):
            thread = threading.Thread(target=self._write, args=(self.cookies[n::self.threads],),
                                      daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(timeout=30)

    def between(self, start: float, end: float) -> tuple[list[float], int]:
        inside = [(ms, status) for t, ms, status in self.samples if start <= t < end]
        return [ms for ms, _ in inside], sum(status != 200 for _, status in inside)


class LockWaits:
    """Samples ``pg_stat_activity`` every 20 ms: how often any backend of this database
    waited for a lock (a gc that blocked writers would show here, not just in latency)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.samples: list[tuple[float, int]] = []  # (time, backends waiting for a lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import sqlalchemy as sa

        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'")
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            while not self._stop.wait(0.02):
                self.samples.append((time.perf_counter(), int(db.execute(query).scalar())))

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(samples, samples in which some backend waited for a lock)."""
        inside = [waiting for t, waiting in self.samples if start <= t < end]
        return len(inside), sum(waiting > 0 for waiting in inside)


def run_gc(url: str, timeout: float) -> tuple[int, float, float, float]:
    """``sessionkit gc URL --batch-size 1000`` as a subprocess: (deleted, start, end, seconds)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sessionkit.cli", "gc", url, "--batch-size",
                           "1000"], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    end = time.perf_counter()
    found = re.match(r"deleted (\d+) expired sessions", done.stdout)
    if done.returncode or found is None:
        raise RuntimeError(f"sessionkit gc failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1)), start, end, end - start


def bench_postgres(url: str, count: int, quick: bool) -> tuple[list[Table], list[str]]:
    import sqlalchemy as sa

    from sessionkit.stores.base import Load
    from sessionkit.stores.sql import SQLStore

    live, warm, before_gc = (200, 0.5, 2.0) if quick else (1000, 1.0, 5.0)
    store_url = with_table(url)
    store = SQLStore.from_url(store_url)
    engine = sa.create_engine(store.sync_url)
    app: Any = None
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
            version = connection.execute(sa.text("SHOW server_version")).scalar()
        now = time.time()
        store.execute(Load("absent", now, IDLE, ABSOLUTE))  # the store creates its table
        started = time.perf_counter()
        with engine.begin() as connection:
            postgres_fill_expired(connection, count, now)
        fill_seconds = time.perf_counter() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text(f"VACUUM ANALYZE {TABLE}"))  # as autovacuum would
            table_bytes = connection.execute(sa.text(
                f"SELECT pg_total_relation_size('{TABLE}')")).scalar()
        app = flask_cart_app(store_url)
        client = app.test_client(use_cookies=False)
        cookies = []
        for n in range(live):
            reply = client.post(f"/login/{n}")
            cookies.append(reply.headers["Set-Cookie"].split(";")[0])
        with LockWaits(engine) as locks, Writers(app, cookies, WRITERS, 0.005) as writers:
            time.sleep(warm + before_gc)
            deleted, gc_start, gc_end, gc_seconds = run_gc(
                store_url, timeout=max(120.0, count / 500))
            time.sleep(0.2)
        _, _, _, idle_gc_seconds = run_gc(store_url, timeout=120.0)
        with engine.connect() as connection:
            left, expired = connection.execute(sa.text(
                f"SELECT count(*), count(*) FILTER (WHERE expires_at <= :now) FROM {TABLE}"),
                {"now": now}).one()
    finally:
        if app is not None:
            app.extensions["sessionkit"].close()
        store.close()
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        engine.dispose()
    if deleted != count or expired or left != live:
        raise RuntimeError(f"gc deleted {deleted} of {count} expired rows; {left} rows left "
                           f"({expired} expired), {live} live sessions expected")
    base = writers.samples[0][0] + warm
    before, before_errors = writers.between(base, gc_start)
    during, during_errors = writers.between(gc_start, gc_end)
    sizes = Table(f"PostgreSQL {count:,} expired rows + {live:,} live sessions, "
                  f"sessionkit gc --batch-size 1000", ("measurement", "value", "unit"))
    sizes.rows += [
        ("fill (one INSERT ... SELECT generate_series)", count / fill_seconds, "rows/s"),
        ("table + indexes per row", table_bytes / (count + live), "bytes"),
        ("gc rows deleted", deleted, "rows"),
        ("gc total time (CLI subprocess)", gc_seconds, "s"),
        ("gc rate", deleted / gc_seconds, "rows/s"),
        ("gc again, nothing to delete (process start + connect)", idle_gc_seconds, "s"),
        ("live sessions left after gc", left, "rows"),
    ]
    latency = Table(f"{WRITERS} writer threads, POST /cart/<n> through Flask (ms per request)",
                    ("phase", "requests", "errors", "p50 ms", "p99 ms", "max ms",
                     "lock-wait samples"))
    for phase, samples, errors, start, end in (
            ("before gc", before, before_errors, base, gc_start),
            ("during gc", during, during_errors, gc_start, gc_end)):
        watched, waited = locks.between(start, end)
        latency.rows.append((phase, len(samples), errors, percentile(samples, 0.5),
                             percentile(samples, 0.99), max(samples), f"{waited}/{watched}"))
    return [sizes, latency], [f"PostgreSQL: {version}"]


# --- main -------------------------------------------------------------------------------------
def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so private servers are stopped and the table dropped."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=None,
                        help="sessions per store (default 1,000,000; 20,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="the CI smoke run: 20,000 "
                        "sessions, shorter timings")
    parser.add_argument("--only", default="redis,memory,postgres",
                        help="comma-separated parts to run (default: all)")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return 0
    _stop_on_sigterm()
    count = args.sessions or (20_000 if args.quick else 1_000_000)
    if count < 2 * SMALL:
        parser.error(f"--sessions must be at least {2 * SMALL}")
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - {"redis", "memory", "postgres"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    print(f"sessionkit scale bench, {count:,} sessions per store")
    for line in machine():
        print(line, flush=True)
    sections: list[Callable[[], tuple[list[Table], list[str]]]] = []
    if "redis" in parts:
        sections.append(lambda: bench_redis(count, args.quick))
    if "memory" in parts:
        sections.append(lambda: ([bench_memory(count, 1800.0)], []))
    if "postgres" in parts:
        url = os.environ.get("SESSIONKIT_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
        sections.append(lambda: bench_postgres(url, count, args.quick))
    for section in sections:
        begun = time.perf_counter()
        tables, notes = section()
        for line in notes:
            print(line)
        for table in tables:
            print()
            print(table.render())
        print(f"({time.perf_counter() - begun:.1f}s, {load_average()})", flush=True)
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
