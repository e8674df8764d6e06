"""Every mode of the cluster demo is listed wherever the demo's modes are listed: its
``--help``, its usage line, ``dev.py``'s usage, the README and the cluster demo guide. A mode
added to ``examples.demo_cluster.MODES`` without its documentation fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples import demo_cluster

ROOT = Path(__file__).resolve().parents[2]
MODES = list(demo_cluster.MODES)


def listings(text: str) -> list[str]:
    """The lines that list modes: they mention ``--mode`` and name at least two modes."""
    return [line for line in text.splitlines() if "--mode" in line
            and sum(bool(re.search(rf"\b{mode}\b", line)) for mode in MODES) >= 2]


def help_text() -> str:
    done = subprocess.run([sys.executable, "-m", "examples.demo_cluster", "--help"], cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


@pytest.mark.parametrize("source", ["--help", "usage", "dev.py", "README.md",
                                    "docs/cluster-demo.md"])
def test_every_listing_of_the_demo_modes_names_them_all(source: str) -> None:
    text = {"--help": help_text, "usage": lambda: demo_cluster.__doc__ or "",
            "dev.py": lambda: (ROOT / "dev.py").read_text()}.get(
        source, lambda: (ROOT / source).read_text())()
    found = listings(text)
    assert found, f"{source} lists no modes"
    for line in found:
        missing = [mode for mode in MODES if not re.search(rf"\b{mode}\b", line)]
        assert not missing, f"{source} leaves out {missing}: {line.strip()}"
