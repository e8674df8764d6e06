"""The error for an optional part imported without its extra: it names what to install."""

from __future__ import annotations


def missing_extra(error: ModuleNotFoundError, extra: str, part: str) -> ModuleNotFoundError:
    """``error`` (a driver that is not installed) restated with the fix. The missing module's
    name is kept, so callers can still tell which driver it was."""
    return ModuleNotFoundError(
        f"{part} needs the {error.name!r} package, which is not installed: "
        f"pip install 'sessionkit[{extra}]'", name=error.name)
