"""The store matrix: every behaviour suite runs on each store URL below.

Service-backed stores read their URL from the environment (skipped with a reason when unset,
failing instead under SESSIONKIT_REQUIRE_SERVICES=1) and start each test from an empty store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import service_url

REDIS_ENV = "SESSIONKIT_TEST_REDIS_URL"
POSTGRES_ENV = "SESSIONKIT_TEST_POSTGRES_URL"
MYSQL_ENV = "SESSIONKIT_TEST_MYSQL_URL"
SQL_TABLE = "sessionkit_sessions"


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def clear_sql(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            if sa.inspect(connection).has_table(SQL_TABLE):
                connection.execute(sa.text(f"DELETE FROM {SQL_TABLE}"))
    finally:
        engine.dispose()


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://"


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}"


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = service_url(POSTGRES_ENV, "PostgreSQL")
    clear_sql(url)
    return url


def _mysql(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = service_url(MYSQL_ENV, "MariaDB/MySQL")
    clear_sql(url)
    return url


def _sentinel(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url: str = request.getfixturevalue("redis_sentinel_url")
    return url


def _cluster(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url: str = request.getfixturevalue("redis_cluster_url")
    return url


def _jwt(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "jwt://"


def _jwt_redis(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    _redis(request, tmp_path)
    return "jwt://?algorithm=HS512"


def _jwt_encrypted(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "jwt://?encrypted=true"


StoreFactory = Callable[[pytest.FixtureRequest, Path], str]
ALL_STORES: dict[str, StoreFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "redis-sentinel": _sentinel,
    "redis-cluster": _cluster,
    "postgresql": _postgres,
    "mariadb": _mysql,
    "jwt": _jwt,
    "jwt-redis": _jwt_redis,
    "jwt-encrypted": _jwt_encrypted,
}
#: Stores that keep data on the server (client-side modes cannot merge concurrent writes).
SERVER_STORES = [name for name in ALL_STORES if not name.startswith("jwt")]


@dataclass
class StoreCase:
    """One column of the matrix: the store URL plus the settings it needs."""

    name: str
    url: str
    settings: dict[str, Any]

    @property
    def client_side(self) -> bool:
        return self.url.startswith("jwt://")


def store_case(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> StoreCase:
    url = ALL_STORES[name](request, tmp_path)
    settings: dict[str, Any] = {}
    if name in ("jwt", "jwt-encrypted"):
        settings["revocation_store"] = "memory://"
    elif name == "jwt-redis":
        settings["revocation_store"] = os.environ[REDIS_ENV]
    return StoreCase(name, url, settings)


def store_url_for(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    return store_case(request, tmp_path, name).url


def iter_params(names: list[str]) -> Iterator[Any]:
    for name in names:
        yield pytest.param(name, id=name)

store_url = store_url_for  # the name the SQL tests use
