"""Store URLs to store objects. Drivers are imported only when their scheme is used.

The built-in schemes are below. A store published by another package is found through the
``sessionkit.stores`` entry point group: the entry point's name is the URL scheme and its
value a ``Store`` class with a ``from_url(url)`` class method, e.g. in that package's
``pyproject.toml``::

    [project.entry-points."sessionkit.stores"]
    dynamo = "sessionkit_dynamo:DynamoStore"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError
from .base import (
    BlockingStore,
    Capabilities,
    CommandStore,
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    Op,
    Record,
    Store,
    Touch,
    Update,
)

__all__ = [
    "BlockingStore", "Capabilities", "CommandStore", "Create", "Delete", "DeleteUser",
    "ListUser", "Load", "Op", "Record", "Store", "Touch", "Update", "open_store",
    "store_schemes",
]

ENTRY_POINT_GROUP = "sessionkit.stores"

# scheme -> (module, class, extra that installs its driver, the driver's top-level module)
_REDIS = ("sessionkit.stores.redis", "RedisStore", "redis", "redis")
_SQL = ("sessionkit.stores.sql", "SQLStore", "sql", "sqlalchemy")
_BUILT_IN: dict[str, tuple[str, str, str | None, str | None]] = {
    "memory": ("sessionkit.stores.memory", "MemoryStore", None, None),
    "redis": _REDIS,
    "rediss": _REDIS,
    "unix": _REDIS,
    "redis+sentinel": _REDIS,
    "redis+cluster": _REDIS,
    # Any SQLAlchemy URL: the dialect name, with or without "+driver".
    "sqlite": _SQL,
    "postgresql": _SQL,
    "postgres": _SQL,
    "mysql": _SQL,
    "mariadb": _SQL,
    "mssql": _SQL,
    "oracle": _SQL,
}
#: Not stores, but what else a ``store`` URL may name (for the list of valid schemes).
OTHER_SCHEMES = ("jwt",)


def _published() -> dict[str, Any]:
    """Stores other packages publish (entry points), by scheme."""
    return {point.name.lower(): point for point in entry_points(group=ENTRY_POINT_GROUP)}


def store_schemes() -> list[str]:
    """Every scheme a ``store`` URL may use."""
    return sorted({*_BUILT_IN, *OTHER_SCHEMES, *_published()})


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower()


def is_known_scheme(scheme: str) -> bool:
    """Whether ``open_store`` (or the client mode) understands ``scheme``, without importing
    any driver: a wrong URL fails at startup."""
    return (scheme in _BUILT_IN or scheme in OTHER_SCHEMES or _sql_dialect(scheme) is not None
            or scheme in _published())


def _sql_dialect(scheme: str) -> tuple[str, str, str | None, str | None] | None:
    if "+" in scheme and not scheme.startswith("redis"):
        return _BUILT_IN.get(scheme.split("+", 1)[0])  # SQLAlchemy dialect+driver
    return None


def unknown_scheme(url: str) -> ConfigError:
    scheme = scheme_of(url)
    return ConfigError(
        f"unknown store scheme {scheme!r} in {scheme}://...; valid schemes: "
        + ", ".join(f"{s}://" for s in store_schemes())
    )


def open_store(url: str) -> Store:
    """The store a URL names, e.g. ``memory://?max_sessions=1000``."""
    scheme = scheme_of(url)
    entry = _BUILT_IN.get(scheme) or _sql_dialect(scheme)
    if entry is None:
        point = _published().get(scheme)
        if point is None:
            raise unknown_scheme(url)
        store_class: Any = point.load()
        return _checked(store_class.from_url(url), point.value)
    module_name, class_name, extra, driver = entry
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if driver is not None and (exc.name or "").split(".")[0] == driver:
            raise ConfigError(
                f"the {scheme}:// store needs the {driver!r} package: "
                f"pip install 'sessionkit[{extra}]'"
            ) from None
        raise
    return _checked(getattr(module, class_name).from_url(url), class_name)


def _checked(store: object, origin: str) -> Store:
    if not isinstance(store, Store):
        raise ConfigError(f"{origin}.from_url did not return a sessionkit Store "
                          f"(subclass sessionkit.stores.BlockingStore or CommandStore)")
    return store
