"""What the package declares: one version, written in ``sessionkit/_version.py`` and read by
both the package metadata and ``sessionkit.__version__``."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.version import Version

import sessionkit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


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

