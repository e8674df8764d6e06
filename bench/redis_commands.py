"""Counting the commands Redis clients send, for a private redis-server.

``INFO commandstats`` also counts the commands a Lua script runs inside Redis, and sessionkit
writes with one script: what a client sends (one round trip each) is what Redis's slow log
records with the client's address, when every command is logged.
"""

from __future__ import annotations

from typing import Any

#: Commands the counting itself sends.
OWN = (b"SLOWLOG", b"CONFIG", b"INFO")
#: The slow log's capacity while counting: more than any counted step sends.
CAPACITY = 1_000_000


def start(probe: Any) -> None:
    """Log every command from now on (forgetting what was logged before)."""
    probe.config_set("slowlog-max-len", CAPACITY)
    probe.config_set("slowlog-log-slower-than", 0)
    probe.slowlog_reset()


def sent(probe: Any) -> int:
    """Commands clients sent since ``start`` (a script's inner commands, logged with the
    address ``?:0``, and the counting's own are left out); starts counting again."""
    entries = probe.slowlog_get(CAPACITY)
    probe.slowlog_reset()
    return sum(1 for entry in entries
               if entry.get("client_address") != b"?:0"
               and not bytes(entry["command"]).upper().startswith(OWN))
