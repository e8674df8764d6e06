"""How many session commands one Redis shard serves per second on this machine, for capacity
planning (docs/operations.md).

Starts a private redis-server (one core's worth: Redis runs commands on one thread), stores one
session hash as sessionkit writes it (a logged-in user with a 30-item cart, about 1 KB), and
runs ``redis-benchmark`` against it with the commands sessionkit sends: ``HGETALL`` (a read)
and ``EVALSHA`` of its write script (a write; ``HSET`` and ``PEXPIRE`` alone for
comparison). 50 connections, no pipelining (one command per round trip, as a request sends
it), 200,000 commands each. Prints commands/s.

    python bench/redis_shard.py
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sessionkit.stores.redis.store import WRITE_SCRIPT, WRITE_SCRIPT_SHA  # noqa: E402
from tests.redis_servers import RedisProcesses, spare_ports  # noqa: E402

KEY = "sessionkit:bench-session"
REQUESTS = 200_000
CLIENTS = 50


def session_fields() -> dict[str, str]:
    cart = [f"item-{n:03d}-{'x' * 16}" for n in range(30)]
    return {"d:user": json.dumps("user-000001"), "d:cart": json.dumps(cart),
            "d:csrf": json.dumps("t" * 43), "c": "1800000000.0", "e": "1801209600.0",
            "a": "1800000000.0", "u": "user-000001", "f": "1"}


def benchmark(port: int, *command: str) -> float:
    tool = shutil.which("redis-benchmark")
    assert tool, "redis-benchmark is not installed (apt-get install redis-tools)"
    done = subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port), "-c", str(CLIENTS),
                           "-n", str(REQUESTS), "-q", *command],
                          capture_output=True, text=True, timeout=600, check=True)
    found = re.findall(r"([\d.]+) requests per second", done.stdout)
    assert found, done.stdout
    return float(found[-1])


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        processes = RedisProcesses(Path(directory))
        [port] = spare_ports(1)
        try:
            processes.start(port, "--maxmemory-policy", "noeviction")
            import redis

            client = redis.Redis(port=port)
            client.hset(KEY, mapping=session_fields())
            size = client.memory_usage(KEY)
            client.close()
            with open("/proc/loadavg") as load:
                print(f"load average before: {load.read().split()[0]}")
            print(f"session hash: {size} bytes (MEMORY USAGE)")
            read = benchmark(port, "HGETALL", KEY)
            write = benchmark(port, "HSET", KEY, "d:cart", json.dumps(["a"] * 30), "a",
                              str(time.time()))
            expire = benchmark(port, "PEXPIRE", KEY, "1209600000")
            client = redis.Redis(port=port)
            client.script_load(WRITE_SCRIPT)
            client.close()
            now = time.time()
            script = benchmark(port, "EVALSHA", WRITE_SCRIPT_SHA, "1", KEY, "0", "1", "0",
                               "d:cart", json.dumps(["a"] * 30), "e", str(now + 1209600),
                               "a", str(now))
            print(f"HGETALL: {read:,.0f} commands/s")
            print(f"HSET (2 fields): {write:,.0f} commands/s")
            print(f"PEXPIRE: {expire:,.0f} commands/s")
            print(f"EVALSHA of the write script (a write: 3 fields, version bump): "
                  f"{script:,.0f} commands/s")
        finally:
            processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
