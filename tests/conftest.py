from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest

from tests.redis_servers import flush, redis_cluster, redis_sentinel
from tests.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _sessionkit_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sessionkit")


@pytest.fixture(scope="session")
def _redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as started:
        yield started


@pytest.fixture(scope="session")
def _redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as started:
        yield started


@pytest.fixture
def redis_cluster_url(_redis_cluster: tuple[str, list[int]]) -> str:
    url, ports = _redis_cluster
    flush(shutil.which("redis-cli") or "redis-cli", ports)
    return url


@pytest.fixture
def redis_sentinel_url(_redis_sentinel: tuple[str, int]) -> str:
    url, master = _redis_sentinel
    flush(shutil.which("redis-cli") or "redis-cli", [master])
    return url
