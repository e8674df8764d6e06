"""Draining a local instance on shutdown: its live sessions go to a shared store with their
remaining lifetime, where instances with ``on_affinity_miss="fallback"`` pick them up. A
rolling restart then loses no cart. Bounded in time: a shutdown must not hang."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from .stores.base import Create, On, Store
from .stores.memory import MemoryStore

logger = logging.getLogger("sessionkit")


def drain_steps(
    local: MemoryStore, target: Store, *, now: float, absolute: float,
    clock: Callable[[], float], deadline: float,
) -> Generator[On, Any, tuple[int, int]]:
    """Copy every live session of ``local`` to ``target``; return ``(moved, left behind)``."""
    records = [(key, record) for batch in local.iter_records() for key, record in batch
               if record.expires_at > now]
    moved = 0
    for key, record in records:
        if clock() >= deadline:
            break
        yield On(target, Create(key, record, absolute))
        moved += 1
    return moved, len(records) - moved


def report(moved: int, left: int, target: Store, seconds: float) -> None:
    if left:
        logger.warning(
            "sessionkit: drained %d sessions to %s in %.1fs; %d left behind (time limit)",
            moved, target.name, seconds, left,
        )
    else:
        logger.info("sessionkit: drained %d sessions to %s in %.1fs", moved, target.name, seconds)
