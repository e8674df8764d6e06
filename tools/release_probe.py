"""Run inside a clean virtualenv by ``check_release.py``: import each named module in a fresh
child process (forked before anything of the package is imported, so no module rides on
another's import) and print one JSON line per module: whether it imported, and if not, the
exception's type, message and the module it could not find. Only the standard library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from typing import Any

CHILD_SECONDS = 60


def probe(module: str) -> dict[str, Any]:
    """Import ``module`` here and describe the outcome."""
    import importlib

    try:
        imported = importlib.import_module(module)
    except BaseException as exc:  # any failure is a finding, never a crash of the probe
        chain = [c.__module__ + "." + c.__qualname__ for c in type(exc).__mro__]
        return {"module": module, "ok": False, "type": type(exc).__qualname__,
                "classes": chain, "message": str(exc),
                "missing": getattr(exc, "name", None) if isinstance(exc, ImportError) else None,
                "where": where(exc)}
    return {"module": module, "ok": True, "file": getattr(imported, "__file__", None)}


def where(exc: BaseException) -> list[str]:
    """The last frames of the failed import in installed code (not the probe's, not
    importlib's), as ``path:line: code`` with paths from the site-packages folder on (the same
    in every virtualenv)."""
    every = list(traceback.extract_tb(exc.__traceback__))
    frames = [f for f in every if "site-packages" in f.filename] or every[-1:]
    return [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}: {f.line}"
            for f in frames[-3:]]


def in_child(module: str) -> dict[str, Any]:
    """``probe(module)`` in a forked child (a fresh interpreter where fork is missing)."""
    if not hasattr(os, "fork"):
        done = subprocess.run([sys.executable, "-I", __file__, "--one", module],
                              capture_output=True, text=True, timeout=CHILD_SECONDS,
                              check=False)
        found: dict[str, Any] = json.loads(done.stdout)
        return found
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, report, leave without running any cleanup
        os.close(read_end)
        try:
            os.write(write_end, json.dumps(probe(module)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    if not text:
        return {"module": module, "ok": False, "type": "crash", "classes": [],
                "message": "the import killed the process", "missing": None, "where": []}
    result: dict[str, Any] = json.loads(text)
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        print(json.dumps(probe(argv[1])))
        return 0
    for module in argv:
        print(json.dumps(in_child(module)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
