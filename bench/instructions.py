"""CPU instructions per request, counted by valgrind (callgrind): a measure that does not
move with the machine's load, to complement bench/run.py's timings on a busy machine.

    python bench/instructions.py [--requests 1000] [VARIANT ...]

Each variant (bench/apps.py) runs the 90/10 workload in-process twice under callgrind, with
0 and with N timed requests after the same seeding and warm-up; the difference divided by N is
the app's instructions per request in this process (Redis's own work is in its own process,
so it is not counted: only the client side is). Slow (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import processes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["flask/none", "flask/sessionkit-memory", "flask/sessionkit-redis",
           "flask/flask-session-redis", "flask/sessionkit-jwt", "flask/flask-cookie",
           "fastapi/none", "fastapi/sessionkit-memory", "fastapi/sessionkit-redis",
           "fastapi/starsessions-redis", "fastapi/sessionkit-jwt", "fastapi/starlette-cookie",
           "fastapi/sessionkit-jwt-encrypted"]
PEERS = {"flask/sessionkit-memory": "flask/none", "fastapi/sessionkit-memory": "fastapi/none",
         "flask/sessionkit-redis": "flask/flask-session-redis",
         "fastapi/sessionkit-redis": "fastapi/starsessions-redis",
         "flask/sessionkit-jwt": "flask/flask-cookie",
         "fastapi/sessionkit-jwt": "fastapi/starlette-cookie",
         "fastapi/sessionkit-jwt-encrypted": "fastapi/sessionkit-jwt"}
CHILD = """
import sys
sys.path.insert(0, {root!r})
from bench import apps
from bench.workload import InProcess, plan
name, n, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
driver = InProcess(apps.build(name, {{"redis": url}}), name.startswith("fastapi"), 100)
driver.seed(sessions=not name.endswith("/none"))
driver.run(plan(300, 100))
driver.run(plan(n, 100, start=300))
"""


def instructions(variant: str, requests: int, redis_url: str) -> int:
    code = CHILD.format(root=str(ROOT))
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-c", code, variant, str(requests), redis_url],
        capture_output=True, text=True, timeout=1800, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total for {variant}: {done.stderr[-500:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("variants", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is not installed (apt-get install valgrind)")
    found: dict[str, float] = {}
    with processes.private_redis() as url:
        for variant in args.variants:
            base = instructions(variant, 0, url)
            found[variant] = (instructions(variant, args.requests, url) - base) / args.requests
            print(f"{variant}: {found[variant]:,.0f} instructions/request", flush=True)
    print(f"\n{'app':<30} {'instructions/request':>21} {'peer':<28} {'peer/sessionkit':>16}")
    for variant, count in found.items():
        peer = PEERS.get(variant, "")
        ratio = f"{found[peer] / count:>16.2f}" if peer in found else ""
        print(f"{variant:<30} {count:>21,.0f} {peer:<28} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
