"""Acknowledged writes a crashed Redis master takes with it, for docs/operations.md.

Redis replicates asynchronously: a master answers a write before its replica has it. When the
master dies (``kill -9``) the replica that takes over lacks whatever was still on its way. This
measures that window on this machine: a master and one replica (private redis-servers), eight
threads writing as fast as they can (one ``HSET`` of a new field per round trip, as a session
write), the master killed after two seconds, then every acknowledged field looked up on the
replica. Each configuration runs five times:

* plain asynchronous replication (the default);
* ``min-replicas-to-write 1`` on the master (it refuses writes while no replica is connected:
  this guards a master cut off from its replicas, not a crash);
* ``WAIT 1 100`` after each write: a write counts as acknowledged only once the replica has it.

    python bench/replication_loss.py
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.redis_servers import RedisProcesses, spare_ports, wait_until  # noqa: E402

THREADS = 8
RUNS = 5
SECONDS_BEFORE_CRASH = 2.0


def one_run(config: str) -> tuple[int, int]:
    """(acknowledged writes, of which lost)."""
    with tempfile.TemporaryDirectory() as directory:
        processes = RedisProcesses(Path(directory))
        master, replica = spare_ports(2)
        try:
            guard = ("--min-replicas-to-write", "1") if config == "min-replicas" else ()
            processes.start(master, *guard)
            processes.start(replica, "--replicaof", "127.0.0.1", str(master))
            probe = redis.Redis(port=replica)
            wait_until("replica linked", lambda: probe.info("replication")[
                "master_link_status"] == "up")
            acknowledged: list[list[str]] = [[] for _ in range(THREADS)]
            stop = threading.Event()

            def write(number: int) -> None:
                client = redis.Redis(port=master, socket_timeout=1)
                sequence = 0
                while not stop.is_set():
                    field = f"f{sequence}"
                    try:
                        if config == "wait":
                            pipe = client.pipeline(transaction=False)
                            pipe.hset(f"session:{number}", field, "1")
                            pipe.execute_command("WAIT", 1, 100)
                            _, replicas = pipe.execute()
                            if replicas < 1:
                                continue  # not acknowledged: the request would get a 503
                        else:
                            client.hset(f"session:{number}", field, "1")
                    except (redis.exceptions.RedisError, OSError):
                        return
                    acknowledged[number].append(field)
                    sequence += 1

            threads = [threading.Thread(target=write, args=(n,)) for n in range(THREADS)]
            for thread in threads:
                thread.start()
            time.sleep(SECONDS_BEFORE_CRASH)
            processes.kill(master)
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            lost = 0
            for number, fields in enumerate(acknowledged):
                kept = {k.decode() for k in probe.hkeys(f"session:{number}")}
                lost += sum(1 for f in fields if f not in kept)
            probe.close()
            return sum(len(f) for f in acknowledged), lost
        finally:
            processes.stop()


def main() -> int:
    for config in ("async", "min-replicas", "wait"):
        results = [one_run(config) for _ in range(RUNS)]
        rate = sum(a for a, _ in results) / (RUNS * SECONDS_BEFORE_CRASH)
        losses = ", ".join(str(lost) for _, lost in results)
        print(f"{config:13} {rate:9,.0f} acknowledged writes/s; lost at the crash: {losses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
