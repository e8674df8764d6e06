"""``bench/scale.py --quick`` end to end (20,000 sessions per store): it must finish in bounded
time and print every row of its tables with plausible numbers. A private redis-server is
started by the bench itself; PostgreSQL comes from SESSIONKIT_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import require_binary, service_url

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 150  # seconds; the run takes 20-40 s on 2 busy cores
SESSIONS = 20_000
LIVE = 200  # live sessions the PostgreSQL part writes to while gc runs
PAYLOAD = 999  # bytes of keys and JSON values in one bench session
_COLUMNS = re.compile(r" {2,}")


def numbers(output: str, *head: str) -> list[float]:
    """The numbers of the table row whose first cells are ``head`` (columns are separated
    by two spaces or more; a unit column, if any, is left out)."""
    for line in output.splitlines():
        cells = _COLUMNS.split(line.strip())
        if tuple(cells[:len(head)]) == head:
            found = []
            for cell in cells[len(head):]:
                try:
                    found.append(float(cell.replace(",", "")))
                except ValueError:
                    continue  # the unit
            return found
    raise AssertionError(f"no row {head!r} in:\n{output}")


def run_quick() -> str:
    require_binary("redis-server", "apt-get install redis-server")
    postgres = service_url("SESSIONKIT_TEST_POSTGRES_URL", "PostgreSQL")
    env = {**os.environ, "SESSIONKIT_BENCH_POSTGRES_URL": postgres, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--quick"],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


def test_scale_quick_prints_every_row_with_plausible_numbers() -> None:
    out = run_quick()
    assert f"{SESSIONS:,} sessions per store" in out

    # Redis: a ~1 KB session cannot take less than its payload, nor many times more.
    [fill] = numbers(out, "fill rate (RedisStore.put_records, 2,000 per pipeline)")
    assert fill > 0
    [per_session] = numbers(out, "bytes per session (INFO used_memory growth / N)")
    assert PAYLOAD < per_session < 4 * PAYLOAD
    [hashtable] = numbers(out, "MEMORY USAGE of a session hash (hashtable)")
    [listpack] = numbers(out, "MEMORY USAGE, same hash as listpack (hash-max-listpack-value 2048)")
    assert PAYLOAD < listpack < hashtable < per_session

    # GET /cart against 1,000 and 20,000 sessions: every request timed found its session
    # (the bench checks Redis's keyspace hits), and the large store is not slower in kind.
    medians = {}
    for app in ("flask", "fastapi"):
        for size in (1000, SESSIONS):
            row = numbers(out, app, f"{size:,}")
            requests, p50, p99, mean, server = row
            assert requests == 1200
            assert 0 < p50 <= p99
            assert mean > 0 and 0 < server < p50
            medians[app, size] = p50
        assert medians[app, SESSIONS] < 3 * medians[app, 1000]

    # Memory store: RSS growth per session, in a child process.
    [rss] = numbers(out, "RSS per session (VmRSS growth / N)")
    assert PAYLOAD < rss < 6 * PAYLOAD

    # PostgreSQL: gc deleted exactly the expired rows and left every live session.
    assert numbers(out, "gc rows deleted") == [SESSIONS]
    assert numbers(out, "live sessions left after gc") == [LIVE]
    [gc_seconds] = numbers(out, "gc total time (CLI subprocess)")
    assert 0 < gc_seconds < TIMEOUT
    [startup] = numbers(out, "gc again, nothing to delete (process start + connect)")
    assert 0 < startup < TIMEOUT
    [per_row] = numbers(out, "table + indexes per row")
    assert PAYLOAD < per_row < 4 * PAYLOAD
    for phase in ("before gc", "during gc"):
        requests, errors, p50, p99, worst = numbers(out, phase)
        assert requests > 0 and errors == 0
        assert 0 < p50 <= p99 <= worst
