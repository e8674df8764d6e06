"""The benchmark's one command works from a clean checkout: a quick run of bench/run.py (tiny
rounds, so its speed numbers mean nothing) must compare every pair at both levels and count
sessionkit's Redis commands as documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import service_url

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [
    ("flask", "sessionkit-redis", "flask-session-redis"),
    ("fastapi", "sessionkit-redis", "starsessions-redis"),
    ("fastapi", "sessionkit-jwt", "starlette-cookie"),
    ("flask", "sessionkit-jwt", "flask-cookie"),
    ("flask", "sessionkit-memory", "none"),
    ("fastapi", "sessionkit-memory", "none"),
    ("flask", "sessionkit-postgresql", "flask-session-sqlalchemy"),
    ("flask", "sessionkit-hybrid", "none"),
    ("fastapi", "sessionkit-hybrid", "none"),
    ("flask", "sessionkit-hybrid", "sessionkit-redis"),
    ("fastapi", "sessionkit-hybrid", "sessionkit-redis"),
]
MISROUTED = [
    ("flask", r"sessionkit-hybrid \(misrouted\)", "sessionkit-redis"),
    ("fastapi", r"sessionkit-hybrid \(misrouted\)", "sessionkit-redis"),
]


def test_quick_bench_compares_every_pair_and_counts_redis_commands() -> None:
    postgres = service_url("SESSIONKIT_TEST_POSTGRES_URL", "PostgreSQL")
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
        timeout=400, env={**os.environ, "BENCH_POSTGRES_URL": postgres}, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "flask-session 0.8" in out and "starsessions 2." in out  # peers' versions named
    in_process, _, servers = out.partition("over real servers")
    for section in (in_process, servers):
        for framework, ours, peer in PAIRS:
            assert re.search(rf"{framework}\s+{ours}\s+{peer}\s+\d+\s+\d+\s+\d+\.\d\d", section), (
                framework, ours, peer, section)
    for framework, ours, peer in MISROUTED:  # two instances in-process only
        assert re.search(rf"{framework}\s+{ours}\s+{peer}\s+\d+", in_process)
    counts = dict(re.findall(r"^(\S+/\S+)\s+(\d\.\d\d\s+\d\.\d\d)\s+\d\.\d\d$", out, re.M))
    assert counts["flask/sessionkit-redis"].split() == ["1.00", "2.00"]
    assert counts["fastapi/sessionkit-redis"].split() == ["1.00", "2.00"]
    assert counts["flask/flask-session-redis"].split() == ["2.00", "2.00"]
    # hybrid with affinity intact: reads from the near cache, writes go through
    assert float(counts["flask/sessionkit-hybrid"].split()[0]) < 0.5
