"""Store URLs to store objects. Drivers are imported only when their scheme is used."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Record, Store

__all__ = ["Record", "Store", "open_store", "store_schemes"]

# scheme -> (module, class, extra that installs its driver, the driver's top-level module)
_REDIS = ("sessionkit.stores.redis", "RedisStore", "redis", "redis")
_SQL = ("sessionkit.stores.sql", "SQLStore", "sql", "sqlalchemy")
_REGISTRY: dict[str, tuple[str, str, str | None, str | None]] = {
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


def store_schemes() -> list[str]:
    return sorted(_REGISTRY)


def open_store(url: str) -> Store:
    """The store a URL names, e.g. ``memory://?max_sessions=1000``."""
    scheme = url.split("://", 1)[0].lower()
    entry = _REGISTRY.get(scheme)
    if entry is None and "+" in scheme and not scheme.startswith("redis"):
        entry = _REGISTRY.get(scheme.split("+", 1)[0])  # SQLAlchemy dialect+driver
    if entry is None:
        raise ConfigError(
            f"unknown store scheme {scheme!r} in {url.split('://', 1)[0]}://...; valid schemes: "
            + ", ".join(f"{s}://" for s in store_schemes())
            + ", and jwt:// (client mode, as the session store only: sessions in the cookie)"
        )
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
    store_class: Any = getattr(module, class_name)
    store: Store = store_class.from_url(url)
    return store
