"""Running a peer's own tests in a subprocess: under sessionkit (the substitution plugin
active) or on the peer's own machinery (the baseline), and reading back what happened."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.peers.suites import PeerSuite
from tests.peers.verdict import Outcome, read_junit

PLUGIN = Path(__file__).with_name("peer_substitution.py")
#: One run of one peer's tests; they take seconds (see docs/coming-from-peers.md).
RUN_SECONDS = 300
_DROPPED_VARIABLES = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH")


@dataclass
class Run:
    outcomes: dict[str, Outcome]
    evidence: dict[str, Any]
    exit_code: int
    seconds: float
    output: Path  # the run's full pytest output


def _config_file(tree: Path) -> Path | None:
    """The peer's own pytest settings file, as pytest would pick it."""
    if (tree / "pytest.ini").is_file():
        return tree / "pytest.ini"
    pyproject = tree / "pyproject.toml"
    if pyproject.is_file():
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        if "ini_options" in data.get("tool", {}).get("pytest", {}):
            return pyproject
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        parser = configparser.ConfigParser(interpolation=None)
        if (tree / name).is_file():
            parser.read(tree / name, encoding="utf-8")
            if parser.has_section(section):
                return tree / name
    return None


def run_peer_tests(suite: PeerSuite, tree: Path, work: Path, *, substitute: bool,
                   extra_path: Path | None = None) -> Run:
    """Run ``suite``'s test files from ``tree`` (the peer's source tree) with ``work`` for the
    plugin copy, JUnit XML, evidence and output."""
    work.mkdir(parents=True, exist_ok=True)
    plugin_dir = work / "plugin"
    plugin_dir.mkdir(exist_ok=True)
    shutil.copyfile(PLUGIN, plugin_dir / PLUGIN.name)
    junit, evidence, output = work / "junit.xml", work / "substitution.json", work / "output.txt"
    for stale in (junit, evidence):
        stale.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (plugin_dir, extra_path) if p)
    env["SESSIONKIT_PEER_SUBSTITUTE"] = suite.name if substitute else "off"
    env["SESSIONKIT_PEER_REPORT"] = str(evidence)
    config = _config_file(tree)
    if config is None:  # never let pytest walk up into some other project's settings
        config = work / "pytest.ini"
        config.write_text("[pytest]\n")
    command = [
        sys.executable, "-m", "pytest", "-p", PLUGIN.stem, "-p", "no:cacheprovider",
        "--rootdir", str(tree), "--confcutdir", str(tree), "-c", str(config),
        f"--junitxml={junit}", "-o", "junit_family=xunit1", "-q", "--tb=short",
        *suite.pytest_args, *suite.test_files,
    ]
    started = time.monotonic()
    with output.open("w", encoding="utf-8") as out:
        try:
            done = subprocess.run(command, cwd=tree, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{suite.name}'s tests ran over {RUN_SECONDS} s; "
                                 f"output: {output}") from None
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1) or not junit.exists():  # 0: all passed, 1: some failed
        tail = "\n".join(output.read_text(encoding="utf-8").splitlines()[-30:])
        raise AssertionError(f"{suite.name}'s tests did not run (pytest exit "
                             f"{done.returncode}):\n{tail}")
    report = json.loads(evidence.read_text(encoding="utf-8")) if evidence.exists() else {}
    return Run(read_junit(junit), report, done.returncode, seconds, output)
