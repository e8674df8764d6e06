"""SQL store URLs: which SQLAlchemy URL each face uses, and the store's own options."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import sqlalchemy as sa

from ...config import parse_bool
from ...errors import ConfigError

DEFAULT_TABLE = "sessionkit_sessions"
_TABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: The store's own query options, removed before the URL reaches SQLAlchemy.
STORE_OPTIONS = ("table", "create_table")

_ASYNC_DRIVERS = {  # sync drivername -> its async counterpart
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+aiomysql",
    "mysql+pymysql": "mysql+aiomysql",
    "mysql+mysqldb": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
    "mariadb+pymysql": "mariadb+aiomysql",
    "mariadb+mysqldb": "mariadb+aiomysql",
}
_SYNC_DRIVERS = {  # async drivername given by the user -> the sync driver to pair with it
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
    "mariadb+aiomysql": "mariadb+pymysql",
    "mariadb+asyncmy": "mariadb+pymysql",
}


def face_urls(url: sa.URL) -> tuple[sa.URL, sa.URL]:
    """The URLs of the sync and the async engine for one store URL (see the module doc)."""
    driver = url.drivername.lower()
    if driver == "postgres" or driver.startswith("postgres+"):
        driver = "postgresql" + driver[len("postgres"):]
    if driver in _SYNC_DRIVERS:
        return url.set(drivername=_SYNC_DRIVERS[driver]), url.set(drivername=driver)
    return url.set(drivername=driver), url.set(drivername=_ASYNC_DRIVERS.get(driver, driver))


def parse_url(url: str, name: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"{name} is not a database URL SQLAlchemy can parse") from None


def dialect_name(url: sa.URL, name: str) -> str:
    """The dialect's name; checked now so that a wrong URL fails at startup, not mid-request."""
    try:
        dialect: str = url.get_dialect().name
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigError(
            f"{name} is not a SQL database URL ({exc}); the SQL store takes SQLAlchemy URLs "
            f"such as sqlite:///sessions.db, postgresql+psycopg://... or mysql+pymysql://..."
        ) from None
    return dialect


def _given_options(url: str) -> dict[str, list[str]]:
    """The store options as written, blank ones included (SQLAlchemy drops ``table=``)."""
    query = url.split("?", 1)[1] if "?" in url else ""
    given: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in STORE_OPTIONS:
            given.setdefault(name, []).append(value)
    return given


def _single_option(given: dict[str, list[str]], name: str, default: str) -> str:
    values = given.get(name, [default])
    if len(values) > 1:
        raise ConfigError(f"store URL option {name} is given {len(values)} times; give it once")
    return values[0]


def store_options(url: str) -> tuple[str, bool]:
    """``(table, create_table)`` from the URL query, validated."""
    given = _given_options(url)
    table = _single_option(given, "table", DEFAULT_TABLE)
    if not _TABLE_NAME_RE.fullmatch(table):
        raise ConfigError(
            f"store URL option table={table!r} is invalid: use a plain SQL identifier "
            f"(letters, digits and _, not starting with a digit, at most 63 characters)"
        )
    create = parse_bool(_single_option(given, "create_table", "true"),
                        "store URL option create_table")
    return table, create
