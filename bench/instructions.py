"""CPU instructions per request, counted by valgrind (callgrind): a measure that does not
move with the machine's load, to complement bench/run.py's timings on a busy machine.

    python bench/instructions.py [--requests 1000] [VARIANT ...]

Each variant (bench/apps.py) runs the 90/10 workload in-process twice under callgrind, with
0 and with N timed requests after the same seeding and warm-up; the difference divided by N is
the app's instructions per request in this process (Redis's own work is in its own process,
so it is not counted: only the client side is). Slow (valgrind runs Python ~50x slower).

A variant ending in ``+misrouted`` runs two instances of the app behind a balancer that always
sends a request to the instance its cookie does not name (hybrid mode's worst case; the plain
Redis app is its peer, run the same way).

``<framework>/floor`` is the least a session layer can do in that framework (bench/floor.py):
its layer is what the framework's own session hooks cost, below which no library can go.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import processes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["flask/none", "flask/floor", "flask/sessionkit-memory", "flask/sessionkit-hybrid",
           "flask/sessionkit-redis", "flask/flask-session-redis", "flask/sessionkit-jwt",
           "flask/flask-cookie",
           "fastapi/none", "fastapi/floor", "fastapi/sessionkit-memory",
           "fastapi/sessionkit-hybrid",
           "fastapi/sessionkit-redis", "fastapi/starsessions-redis", "fastapi/sessionkit-jwt",
           "fastapi/starlette-cookie", "fastapi/sessionkit-jwt-encrypted",
           "flask/sessionkit-hybrid+misrouted", "flask/sessionkit-redis+misrouted",
           "fastapi/sessionkit-hybrid+misrouted", "fastapi/sessionkit-redis+misrouted"]
PEERS = {"flask/sessionkit-memory": "flask/none", "fastapi/sessionkit-memory": "fastapi/none",
         "flask/sessionkit-hybrid": "flask/sessionkit-redis",
         "fastapi/sessionkit-hybrid": "fastapi/sessionkit-redis",
         "flask/sessionkit-redis": "flask/flask-session-redis",
         "fastapi/sessionkit-redis": "fastapi/starsessions-redis",
         "flask/sessionkit-jwt": "flask/flask-cookie",
         "fastapi/sessionkit-jwt": "fastapi/starlette-cookie",
         "fastapi/sessionkit-jwt-encrypted": "fastapi/sessionkit-jwt",
         "flask/sessionkit-hybrid+misrouted": "flask/sessionkit-redis+misrouted",
         "fastapi/sessionkit-hybrid+misrouted": "fastapi/sessionkit-redis+misrouted"}
CHILD = """
import sys
sys.path.insert(0, {root!r})
from bench import apps
from bench.workload import InProcess, Misrouted, plan
variant, n, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
name, _, how = variant.partition("+")
if how == "misrouted":
    driver = Misrouted({{i: apps.build(name, {{"redis": url}}, instance=i) for i in ("a", "b")}},
                       name.startswith("fastapi"), 100)
else:
    driver = InProcess(apps.build(name, {{"redis": url}}), name.startswith("fastapi"), 100)
driver.seed(sessions=not name.endswith("/none"))
driver.run(plan(300, 100))
driver.run(plan(n, 100, start=300))
"""


def instructions(variant: str, requests: int, redis_url: str, out: str = "/dev/null") -> int:
    code = CHILD.format(root=str(ROOT))
    # One hash seed for every run: one cause fewer of counts that differ between runs of the
    # same code (session ids are random, so they still differ, by about 1%).
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         "-c", code, variant, str(requests), redis_url],
        capture_output=True, text=True, timeout=1800, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total for {variant}: {done.stderr[-500:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", metavar="VARIANT",
                        help="per-function breakdown of one variant (cProfile)")
    parser.add_argument("variants", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is not installed (apt-get install valgrind)")
    if args.profile:
        return profile(args.profile, args.requests)
    found: dict[str, float] = {}
    with processes.private_redis() as url:
        for variant in args.variants:
            base = instructions(variant, 0, url)
            found[variant] = (instructions(variant, args.requests, url) - base) / args.requests
            print(f"{variant}: {found[variant]:,.0f} instructions/request", flush=True)
    print(table(found))
    return 0


def table(found: dict[str, float]) -> str:
    """Instructions per request, the session layer's own share (above the same framework with
    no sessions), and the ratio to each pair's peer (by layer: what no harness dilutes)."""
    lines = [f"\n{'app':<36} {'instr/request':>14} {'layer':>10} {'peer':<36} "
             f"{'peer/ours (total)':>18} {'peer/ours (layer)':>18}"]
    for variant, count in found.items():
        none = found.get(variant.split("/")[0] + "/none")
        layer = count - none if none is not None and not variant.endswith("/none") else None
        peer = PEERS.get(variant, "")
        total_ratio = layer_ratio = ""
        if peer in found:
            total_ratio = f"{found[peer] / count:.2f}"
            peer_layer = found[peer] - none if none is not None else None
            if layer and peer_layer is not None and not peer.endswith("/none"):
                layer_ratio = f"{peer_layer / layer:.2f}"
        lines.append(f"{variant:<36} {count:>14,.0f} "
                     f"{'' if layer is None else f'{layer:,.0f}':>10} {peer:<36} "
                     f"{total_ratio:>18} {layer_ratio:>18}")
    return "\n".join(lines)


def profile(variant: str, requests: int) -> int:
    """Where ``variant``'s time goes, per function (cProfile over the same workload, sorted by
    own time; sessionkit's functions and the 40 costliest overall). callgrind counts the
    interpreter's C functions, not Python's, so the per-function view is cProfile's."""
    code = CHILD.format(root=str(ROOT)).replace(
        "driver.run(plan(n, 100, start=300))",
        "import cProfile, pstats\n"
        "profiler = cProfile.Profile()\n"
        "profiler.runcall(driver.run, plan(n, 100, start=300))\n"
        "stats = pstats.Stats(profiler).sort_stats('tottime')\n"
        "stats.print_stats(40)\n"
        "stats.print_stats('sessionkit', 40)")
    with processes.private_redis() as url:
        done = subprocess.run([sys.executable, "-c", code, variant, str(requests), url],
                              capture_output=True, text=True, timeout=1800, check=True)
    print(done.stdout)
    return 0

if __name__ == "__main__":
    sys.exit(main())
