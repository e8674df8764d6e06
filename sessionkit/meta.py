"""Facts about a session that are not its data, kept in ``Record.meta``.

Every store keeps them beside the data (memory as they are, Redis in one hash field, SQL in one
column, jwt:// as claims), and hybrid mode's copies carry them. They are written only when they
change. The names are short because they travel in every jwt:// cookie:

====  =====================================================================================
name  fact
====  =====================================================================================
ub    when the user was bound (epoch seconds): a log-out-everywhere revokes tokens bound
      before it
au    when the user last proved who they are (``session.mark_authenticated()``)
xi    this session's idle timeout in seconds (``session.set_expiry``), within the configured one
xa    this session's absolute timeout in seconds, within the configured one
xp    whether its cookie outlives the browser (true) or not (false); absent: as configured
dn    the app's description of the session (``session.description``), for a devices page
====  =====================================================================================

A name this version does not know is kept as it is (a newer version may have written it); a
known name whose value has the wrong type makes the whole record unreadable, as garbled data
does: a fact that decides when a session ends is never guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stores.base import Record

BOUND = "ub"
AUTHENTICATED = "au"
IDLE = "xi"
ABSOLUTE = "xa"
PERSISTENT = "xp"
DESCRIPTION = "dn"
#: The longest ``session.description``, in characters.
MAX_DESCRIPTION = 200
_TIMES = (BOUND, AUTHENTICATED)
_LIMITS = (IDLE, ABSOLUTE)


def encode(meta: Mapping[str, Any]) -> str:
    """Compact, ASCII-only JSON (no charset of any store can alter it)."""
    return json.dumps(dict(meta), separators=(",", ":"))


def decode(text: str | bytes) -> dict[str, Any] | None:
    """The facts in ``text`` written by ``encode``; None when it is not (see ``checked``)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return checked(value)


def checked(value: object) -> dict[str, Any] | None:
    """``value`` if it is a mapping of facts whose known names hold what they must; else None."""
    if not isinstance(value, dict):
        return None
    for name, fact in value.items():
        if not isinstance(name, str):
            return None
        if name in _TIMES or name in _LIMITS:
            if type(fact) not in (int, float) or not math.isfinite(fact):
                return None
            if name in _LIMITS and fact <= 0:
                return None
        elif name == PERSISTENT:
            if type(fact) is not bool:
                return None
        elif name == DESCRIPTION and (
                not isinstance(fact, str) or len(fact) > MAX_DESCRIPTION):
            return None
    return value


def limits(meta: Mapping[str, Any], idle: float, absolute: float) -> tuple[float, float]:
    """This session's idle and absolute timeouts: its own (``set_expiry``), never beyond the
    configured ``idle`` and ``absolute``."""
    if not meta or (IDLE not in meta and ABSOLUTE not in meta):
        return idle, absolute
    own_idle, own_absolute = meta.get(IDLE), meta.get(ABSOLUTE)
    return (idle if own_idle is None else min(own_idle, idle),
            absolute if own_absolute is None else min(own_absolute, absolute))


def alive(record: Record, now: float, idle: float, absolute: float) -> bool:
    """Whether a session is live at ``now``: before its stored deadline and its absolute limit,
    and within its own limits (``within_own_limits``)."""
    return (record.expires_at > now and record.created_at + absolute > now
            and (not record.meta or within_own_limits(record, now, idle, absolute)))


def within_own_limits(record: Record, now: float, idle: float, absolute: float) -> bool:
    """Whether a session is within the limits ``set_expiry`` gave it: its own absolute limit,
    and its own idle timeout since its last use (a store that slides the deadline while
    reading slides it by the configured timeout, so the stored deadline cannot tell)."""
    meta = record.meta
    if not meta or (IDLE not in meta and ABSOLUTE not in meta):
        return True
    own_idle, own_absolute = limits(meta, idle, absolute)
    return record.created_at + own_absolute > now and (
        IDLE not in meta or record.accessed_at + own_idle > now)
