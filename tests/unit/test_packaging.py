"""What the package declares: one version, written in ``sessionkit/_version.py`` and read by
both the package metadata and ``sessionkit.__version__``; extras that install only what their
part needs (hiredis is a speed-up of its own, never forced by ``[redis]``)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

import sessionkit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]


def test_the_version_is_written_in_one_place() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    source = ROOT / PYPROJECT["tool"]["hatch"]["version"]["path"]
    assert source == ROOT / "sessionkit" / "_version.py"
    written = re.findall(r'^__version__ = "([^"]+)"$', source.read_text(), re.MULTILINE)
    assert written == [sessionkit.__version__]
    assert str(Version(sessionkit.__version__)) == sessionkit.__version__  # PEP 440, normal form


def test_the_installed_metadata_carries_that_version() -> None:
    assert importlib.metadata.version("sessionkit") == sessionkit.__version__


def test_the_redis_extra_installs_redis_py_without_hiredis() -> None:
    redis = [Requirement(r) for r in EXTRAS["redis"]]
    assert [r.name for r in redis] == ["redis"]
    assert all("hiredis" not in r.extras for r in redis)


def test_hiredis_comes_with_the_fast_extra_which_all_includes() -> None:
    fast = [Requirement(r) for r in EXTRAS["fast"]]
    assert any(r.name == "hiredis" or "hiredis" in r.extras for r in fast)
    (everything,) = (Requirement(r) for r in EXTRAS["all"])
    assert everything.name == "sessionkit"
    assert everything.extras == set(EXTRAS) - {"all", "bench", "dev", "testing"}
