"""Whole-store operations behind the ``sessionkit`` command: export, import, migrate, stats,
inspect. They work on records as stores keep them (hashed keys, JSON texts), so nothing here
can turn a store dump into a usable cookie, and copies keep each session's lifetime.

Copies write a record only where its key is free, so a migration can be run again after an
interruption (or twice by mistake): it copies what is missing and reports the rest.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from .affinity import split_route
from .ids import SessionIds
from .meta import checked as checked_meta
from .stores.base import Load, Record, Store

#: Lifetime given to user indexes of copied sessions (the default absolute timeout): no
#: session outlives it, so a user's log-out-everywhere still finds every copied session.
INDEX_SECONDS = 30 * 86400.0
EXPIRY_BUCKETS = ((3600.0, "<1h"), (86400.0, "<1d"), (7 * 86400.0, "<7d"))


@dataclasses.dataclass
class CopyReport:
    copied: int = 0
    already_there: int = 0
    skipped_expired: int = 0
    failed: int = 0

    @property
    def seen(self) -> int:
        return self.copied + self.already_there + self.skipped_expired + self.failed

    def line(self) -> str:
        return (f"copied {self.copied}, already there {self.already_there}, "
                f"skipped (expired) {self.skipped_expired}, failed {self.failed}")


def live(batch: list[tuple[str, Record]], now: float, report: CopyReport
         ) -> list[tuple[str, Record]]:
    """The records of ``batch`` still alive at ``now``; the others are counted as skipped."""
    kept = [(key, record) for key, record in batch if record.expires_at > now]
    report.skipped_expired += len(batch) - len(kept)
    return kept


def copy(source: Store, target: Store, *, batch: int = 1000, dry_run: bool = False,
         now: Callable[[], float] = time.time,
         progress: Callable[[CopyReport], None] = lambda report: None) -> CopyReport:
    """Copy every live session of ``source`` into ``target`` (keys already there are left
    alone); the source is not changed."""
    report = CopyReport()
    for records in source.iter_records(batch):
        kept = live(records, now(), report)
        if dry_run:
            report.copied += len(kept)
        elif kept:
            written = target.put_records(kept, INDEX_SECONDS)
            report.copied += written
            report.already_there += len(kept) - written
        progress(report)
    return report


# --- JSON lines ----------------------------------------------------------------------------
def to_line(key: str, record: Record) -> str:
    item: dict[str, object] = {
        "key": key, "created_at": record.created_at, "expires_at": record.expires_at,
        "accessed_at": record.accessed_at, "user_id": record.user_id,
        "instance": record.instance, "fields": record.fields,
    }
    if record.meta:  # facts about the session (sessionkit.meta): its own expiry, login time
        item["meta"] = record.meta
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def from_line(line: str) -> tuple[str, Record]:
    """A record from an export line; ``ValueError`` names what is wrong."""
    item = json.loads(line)
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    key, fields = item.get("key"), item.get("fields")
    if not isinstance(key, str) or not key or not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise ValueError("needs a string 'key' and 'fields' of JSON texts")
    try:
        times = [float(item[name]) for name in ("created_at", "expires_at", "accessed_at")]
    except (KeyError, TypeError, ValueError):
        raise ValueError("needs numeric created_at, expires_at and accessed_at") from None
    user, instance = item.get("user_id"), item.get("instance")
    if not (user is None or isinstance(user, str)) or not (
            instance is None or isinstance(instance, str)):
        raise ValueError("user_id and instance must be strings or null")
    meta = checked_meta(item.get("meta", {}))
    if meta is None:
        raise ValueError("meta must be an object of session facts as sessionkit writes them")
    return key, Record(fields, times[0], times[1], times[2], user, 1, instance, meta)


def export(source: Store, out: TextIO, *, batch: int = 1000, now: float | None = None
           ) -> CopyReport:
    report = CopyReport()
    for records in source.iter_records(batch):
        for key, record in live(records, time.time() if now is None else now, report):
            out.write(to_line(key, record) + "\n")
            report.copied += 1
    return report


def import_lines(lines: Iterable[str], target: Store, *, batch: int = 1000,
                 now: float | None = None, errors: Callable[[int, str], None] = lambda n, m: None
                 ) -> CopyReport:
    report = CopyReport()
    pending: list[tuple[str, Record]] = []

    def flush() -> None:
        kept = live(pending, time.time() if now is None else now, report)
        if kept:
            written = target.put_records(kept, INDEX_SECONDS)
            report.copied += written
            report.already_there += len(kept) - written
        pending.clear()

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pending.append(from_line(line))
        except ValueError as exc:
            report.failed += 1
            errors(number, str(exc))
            continue
        if len(pending) >= batch:
            flush()
    flush()
    return report


# --- stats and inspect -----------------------------------------------------------------------
@dataclasses.dataclass
class Stats:
    live: int = 0
    expired: int = 0
    data_bytes: int = 0
    per_instance: Counter[str] = dataclasses.field(default_factory=Counter)
    per_expiry: Counter[str] = dataclasses.field(default_factory=Counter)
    users: int = 0


def stats(source: Store, *, batch: int = 1000, now: float | None = None) -> Stats:
    result = Stats()
    users: set[str] = set()
    moment = time.time() if now is None else now
    for records in source.iter_records(batch):
        for _, record in records:
            left = record.expires_at - moment
            if left <= 0:
                result.expired += 1
                continue
            result.live += 1
            result.data_bytes += sum(len(k) + len(v) for k, v in record.fields.items())
            result.per_instance[record.instance or "(unknown)"] += 1
            result.per_expiry[next((name for limit, name in EXPIRY_BUCKETS if left < limit),
                                   ">=7d")] += 1
            if record.user_id is not None:
                users.add(record.user_id)
    result.users = len(users)
    return result


def find(store: Store, cookie_or_id: str, secret_keys: Iterable[bytes], *,
         now: float | None = None) -> tuple[str, Record | None]:
    """The store key and record of a session given its cookie value or id (the id is hashed
    with the app's secret, exactly as the app does)."""
    parts = split_route(cookie_or_id.strip())
    token = parts[0] if parts else cookie_or_id
    verified = SessionIds(list(secret_keys)).verify(token)
    if verified is None:
        raise ValueError("not a session id issued with this secret_key")
    key = verified[0]
    moment = time.time() if now is None else now
    record: Record | None = store.execute(Load(key, moment, 1.0, 1.0))
    return key, record


def describe(record: Record, *, show_values: bool, now: float | None = None
             ) -> Iterator[str]:
    moment = time.time() if now is None else now

    def when(stamp: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))

    yield f"created   {when(record.created_at)}"
    yield f"accessed  {when(record.accessed_at)}"
    state = "expired" if record.expires_at <= moment else f"in {record.expires_at - moment:.0f}s"
    yield f"expires   {when(record.expires_at)} ({state})"
    yield f"user      {record.user_id or '-'}"
    yield f"instance  {record.instance or '-'}"
    for name, text in sorted(record.fields.items()):
        shown = text if show_values else f"<{_kind(text)}, {len(text)} bytes>"
        yield f"  {name} = {shown}"


def _kind(text: str) -> str:
    try:
        value: Any = json.loads(text)
    except ValueError:
        return "unreadable"
    return type(value).__name__
