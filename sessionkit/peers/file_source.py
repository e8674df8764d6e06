"""cachelib's ``FileSystemCache`` directory, where Flask-Session's filesystem and cachelib
backends keep sessions. File commands are performed by a sync runner and, on the async face,
in a worker thread: the same steps on both."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import struct
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import StoreUnavailable
from ..sansio import run_async, run_sync
from ..stores.base import Delete, Load, Op, R, Record
from .base import PeerSource
from .records import NO_EXPIRY_SECONDS, RecordFormat

logger = logging.getLogger("sessionkit")
FileCommand: TypeAlias = tuple[str, str]
FileSteps: TypeAlias = Generator[FileCommand, Any, Any]
_FILE_NAME = re.compile(r"[0-9a-f]{64}")
_HEADER = struct.Struct("I")  # cachelib writes the expiry as a native unsigned int
#: The file cachelib keeps its item count in (never a session).
_COUNT_FILE = hashlib.sha256(b"__wz_cache_count").hexdigest()


class CacheLibFileSource(PeerSource):
    """cachelib's ``FileSystemCache`` directory (Flask-Session's filesystem and cachelib
    backends): one file per session, named by the SHA-256 of its key (key prefix plus id),
    holding a 4-byte expiry (epoch seconds, 0: none) and a pickle of the session's dict,
    which ``format`` reads without unpickling it."""

    shared = True

    def __init__(self, directory: Path, *, prefix: str, format: RecordFormat, name: str,
                 max_bytes: int) -> None:
        self.directory = directory
        self.prefix = prefix
        self.format = format
        self.name = name
        self._max_bytes = max_bytes + _HEADER.size

    def record_id(self, session_id: str) -> str:
        return hashlib.sha256((self.prefix + session_id).encode("utf-8")).hexdigest()

    def execute(self, op: Op[R]) -> R:
        result: R = run_sync(getattr(self, op.method)(op), self._perform)
        return result

    async def aexecute(self, op: Op[R]) -> R:
        result: R = await run_async(getattr(self, op.method)(op), self._aperform)
        return result

    def _perform(self, command: FileCommand) -> bytes | None:
        """The only code that touches the directory."""
        action, name = command
        path = self.directory / name
        try:
            if action == "read":
                with path.open("rb") as file:
                    return file.read(self._max_bytes + 1)
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreUnavailable(self.name, exc) from exc
        return None

    async def _aperform(self, command: FileCommand) -> bytes | None:
        return await asyncio.to_thread(self._perform, command)

    def load(self, op: Load) -> FileSteps:
        if not _FILE_NAME.fullmatch(op.key):
            return None
        data = yield ("read", op.key)
        return None if data is None else self._file_record(data, op.now)

    def delete(self, op: Delete) -> FileSteps:
        if _FILE_NAME.fullmatch(op.key):
            yield ("unlink", op.key)

    def _file_record(self, data: bytes, now: float) -> Record | None:
        if len(data) < _HEADER.size or len(data) > self._max_bytes:
            logger.error("sessionkit: a file in %s is not a session of the size cachelib "
                         "writes; it is not imported", self.name)
            return None
        [expires] = _HEADER.unpack_from(data)
        expires_at = float(expires) if expires else now + NO_EXPIRY_SECONDS
        return self.format.record(data[_HEADER.size:], expires_at, now, self.name)

    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        try:
            names = sorted(entry.name for entry in os.scandir(self.directory)
                           if _FILE_NAME.fullmatch(entry.name) and entry.name != _COUNT_FILE)
        except OSError as exc:
            raise StoreUnavailable(self.name, exc) from exc
        for start in range(0, len(names), batch):
            found = []
            for name in names[start:start + batch]:
                data = self._perform(("read", name))
                record = None if data is None else self._file_record(data, time.time())
                if record is not None:
                    found.append((name, record))
            if found:
                yield found
