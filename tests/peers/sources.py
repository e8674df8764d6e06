"""Bringing a peer's own tests here: from its sdist on PyPI (by pip, at the installed
version), or from a checkout a developer names. Nothing of the peer is kept in this repository.

Everything lands in a cache directory and is reused: a second run downloads nothing.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from tests.peers.suites import PeerSuite

PIP_SECONDS = 300
#: Files of the peer's source tree its test run needs besides tests/: its pytest settings.
CONFIG_FILES = ("pyproject.toml", "setup.cfg", "tox.ini", "pytest.ini")


class Unavailable(Exception):
    """The peer's tests cannot be had here (no network, no such release, not installed)."""


class NotConfigured(Exception):
    """The peer publishes no tests on PyPI and no checkout was named: nothing to run."""


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise Unavailable(f"{distribution} is not installed (sessionkit[dev] brings it)") from None


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_SECONDS)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"pip {args[0]} took over {PIP_SECONDS} s: {' '.join(args)}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise Unavailable(f"pip {' '.join(args)} failed:\n{tail}")


def peer_tree(suite: PeerSuite, cache: Path) -> Path:
    """The directory holding the peer's tests/ and its pytest settings, at the installed
    version of the peer."""
    version = installed_version(suite.distribution)
    if suite.source == "checkout":
        return _checkout(suite, version)
    return _sdist_tree(suite, version, cache)


def _sdist_tree(suite: PeerSuite, version: str, cache: Path) -> Path:
    home = cache / f"{suite.distribution}-{version}"
    tree = home / "tree"
    if (tree / ".complete").exists():
        return tree
    download = home / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    archives = sorted(download.glob("*.tar.gz"))
    if not archives:
        _pip("download", "--no-deps", "--no-binary", ":all:", "--dest", str(download),
             f"{suite.distribution}=={version}")
        archives = sorted(download.glob("*.tar.gz"))
    if not archives:
        raise Unavailable(f"pip found no .tar.gz sdist of {suite.distribution} {version}")
    tree.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archives[0]) as archive:
        members = []
        for member in archive.getmembers():
            parts = member.name.split("/", 1)
            if len(parts) == 2 and (parts[1].startswith("tests/") or parts[1] in CONFIG_FILES):
                member.name = parts[1]
                members.append(member)
        archive.extractall(tree, members=members, filter="data")
    missing = [f for f in suite.test_files if not (tree / f).is_file()]
    if missing:
        raise Unavailable(f"the sdist of {suite.distribution} {version} ships no "
                          f"{', '.join(missing)}")
    (tree / ".complete").write_text(version)
    return tree


def _checkout(suite: PeerSuite, version: str) -> Path:
    variable = suite.checkout_variable
    assert variable is not None
    where = os.environ.get(variable)
    if not where:
        raise NotConfigured(
            f"{suite.distribution} publishes no tests on PyPI (its sdists ship only the "
            f"package); set {variable} to a checkout of its repository at the release "
            f"installed here ({version}) to run them"
        )
    tree = Path(where)
    missing = [f for f in suite.test_files if not (tree / f).is_file()]
    if missing:
        raise ValueError(f"{variable}={where} has no {', '.join(missing)}")
    found = _declared_version(tree)
    if found != version:
        raise ValueError(f"{variable}={where} is {suite.distribution} {found}, but {version} "
                         f"is installed: check out the tag of {version}")
    return tree


def _declared_version(tree: Path) -> str | None:
    try:
        project = tomllib.loads((tree / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("project", {}).get("version") or (
        project.get("tool", {}).get("poetry", {}).get("version"))
    return str(version) if version else None


def requirements_dir(suite: PeerSuite, cache: Path) -> Path | None:
    """A directory with the peer's test-only packages (for its PYTHONPATH), or None."""
    if not suite.test_requirements:
        return None
    target = cache / f"{suite.name}-test-requirements"
    marker = target / ".complete"
    wanted = "\n".join(suite.test_requirements)
    if marker.exists() and marker.read_text() == wanted:
        return target
    _pip("install", "--no-deps", "--upgrade", "--target", str(target), *suite.test_requirements)
    marker.write_text(wanted)
    return target
