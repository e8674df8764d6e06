from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest

from tests.redis_servers import ClusterNodes, SentinelGroup, flush, redis_cluster, redis_sentinel
from tests.support import FakeClock


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``tests/unit`` belongs to the quick tier (``dev.py test --quick``), save what is
    marked slow; the contract suite marks its service-free stores itself."""
    for item in items:
        if item.path.parent.name == "unit" and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.quick)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _sessionkit_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sessionkit")


@pytest.fixture(scope="session")
def _redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as started:
        yield started


@pytest.fixture(scope="session")
def _redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    with redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as started:
        yield started


@pytest.fixture
def redis_cluster_url(_redis_cluster: ClusterNodes) -> str:
    flush(shutil.which("redis-cli") or "redis-cli", _redis_cluster.ports)
    return _redis_cluster.url


@pytest.fixture
def redis_sentinel_url(_redis_sentinel: SentinelGroup) -> str:
    flush(shutil.which("redis-cli") or "redis-cli", _redis_sentinel.data_ports)
    return _redis_sentinel.url


@pytest.fixture(scope="session")
def _replicated_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster-replicas"), replicas=1) as nodes:
        yield nodes


@pytest.fixture
def replicated_cluster(_replicated_cluster: ClusterNodes) -> ClusterNodes:
    """Three masters with a replica each, healthy and empty (a test may break it)."""
    _replicated_cluster.heal()
    return _replicated_cluster


@pytest.fixture(scope="session")
def _sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    with redis_sentinel(tmp_path_factory.mktemp("redis-sentinels"), replicas=1,
                        sentinels=3) as group:
        yield group


@pytest.fixture
def sentinel_group(_sentinel_group: SentinelGroup) -> SentinelGroup:
    """A master, a replica and three Sentinels, healthy and empty (a test may break it)."""
    _sentinel_group.heal()
    return _sentinel_group
