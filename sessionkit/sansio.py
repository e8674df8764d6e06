"""Driving sans-I/O generators: logic yields what it needs done and receives the result.

The engine yields store operations; stores yield driver commands. Each has exactly one
implementation of its logic, and these two runners are the only place where "sync" and
"async" differ: one calls ``perform``, the other awaits it. An exception from ``perform`` is
thrown back into the generator, so the logic can handle it (or let it propagate).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")
T = TypeVar("T")


def run_sync(steps: Generator[R, Any, T], perform: Callable[[R], Any]) -> T:
    """Drive ``steps`` to its return value, performing each request it yields."""
    try:
        request = next(steps)
        while True:
            try:
                result = perform(request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(result)
    except StopIteration as done:
        value: T = done.value
        return value


async def run_async(
    steps: Generator[R, Any, T], perform: Callable[[R], Awaitable[Any]]
) -> T:
    """Drive ``steps`` to its return value, awaiting each request it yields."""
    try:
        request = next(steps)
        while True:
            try:
                result = await perform(request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
