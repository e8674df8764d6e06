"""Every store sessionkit ships keeps the store contract (``sessionkit.testing``), on both
faces: memory, SQLite, Redis (plain, Sentinel, Cluster), PostgreSQL, MariaDB, and Redis on
fakeredis for the quick tier (``python3 dev.py test --quick``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkit.stores import Store, open_store
from sessionkit.testing import StoreContract
from tests.stores import ALL_STORES

#: Stores that need no service: the quick tier runs these.
QUICK = ("memory", "sqlite", "fakeredis")
SERVICE_STORES = [name for name in ALL_STORES if not name.startswith("jwt")
                  and name not in QUICK]


def _fakeredis() -> Store:
    import fakeredis
    import fakeredis.aioredis

    from sessionkit.stores.redis import RedisStore

    server = fakeredis.FakeServer()
    return RedisStore.from_client(fakeredis.FakeRedis(server=server),
                                  fakeredis.aioredis.FakeRedis(server=server),
                                  name="fakeredis")


@pytest.fixture(params=[*(pytest.param(n, marks=pytest.mark.quick) for n in QUICK),
                        *SERVICE_STORES])
def store_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class TestShippedStores(StoreContract):
    @pytest.fixture
    def store(self, store_name: str, request: pytest.FixtureRequest,
              tmp_path: Path) -> Iterator[Store]:
        if store_name == "fakeredis":
            store: Any = _fakeredis()
        else:
            store = open_store(ALL_STORES[store_name](request, tmp_path))  # emptied first
        yield store
        store.close()
