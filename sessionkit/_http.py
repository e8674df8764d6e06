"""HTTP details shared by the WSGI, ASGI and Flask adapters."""

from __future__ import annotations

import logging

from .errors import StoreUnavailable

logger = logging.getLogger("sessionkit")

UNAVAILABLE_BODY = b'{"error":"session store unavailable, retry later"}'


def unavailable(error: StoreUnavailable, retry_after: int) -> list[tuple[str, str]]:
    """Log the outage once per request and return the 503's headers."""
    logger.error("sessionkit: %s; answering 503", error)
    seconds = error.retry_after if error.retry_after is not None else retry_after
    return [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(UNAVAILABLE_BODY))),
        ("Retry-After", str(seconds)),
        ("Cache-Control", "no-store"),
    ]


def add_vary_cookie(current: str | None) -> str:
    """The ``Vary`` value with ``Cookie`` added once."""
    if not current:
        return "Cookie"
    tokens = [t.strip().lower() for t in current.split(",")]
    if "cookie" in tokens or "*" in tokens:
        return current
    return current + ", Cookie"
