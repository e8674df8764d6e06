"""``dev.py`` installs the development environment with real pip and shows that it is working:
on a terminal one status line, rewritten in place, names what pip fetches; in a log or pipe a
few lines; pip's whole output goes to a log file, and its last lines are shown when it fails.
Runs pip for real on wheels built here (``--no-index``: nothing is downloaded)."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = 25


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = load_dev()


def build_wheel(directory: Path, name: str, requires: list[str]) -> None:
    """A minimal pure-Python wheel: one empty package and its metadata."""
    dist = name.replace("-", "_")
    info = f"{dist}-1.0.dist-info"
    with zipfile.ZipFile(directory / f"{dist}-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{dist}/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                       + "".join(f"Requires-Dist: {r}\n" for r in requires))
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\n"
                       "Root-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")


def pip_install(tmp_path: Path, requirement: str, tty: bool) -> tuple[int, str, Path]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = [f"part-{n}" for n in range(PACKAGES)]
    for part in parts:
        build_wheel(wheels, part, [])
    build_wheel(wheels, "shop-deps", parts)
    out = io.StringIO()
    log = tmp_path / "pip.log"
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
               "--no-index", "--find-links", str(wheels), "--target", str(tmp_path / "target"),
               requirement]
    status = dev.pip_with_progress(command, "installing the shop", log, out=out, tty=tty)
    return status, out.getvalue(), log


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "log"])
def test_an_install_of_many_packages_says_what_it_does_in_a_few_lines(tmp_path: Path,
                                                                      tty: bool) -> None:
    status, shown, log = pip_install(tmp_path, "shop-deps", tty)
    assert status == 0, shown
    lines = shown.split("\n")
    assert lines[0].endswith("dev.py: installing the shop")
    assert f"installing {PACKAGES + 1} packages" in shown
    assert re.search(rf"dev.py:   done in \d+s, {PACKAGES + 1} packages installed$", lines[-2])
    assert len(lines) <= 4, shown  # 26 packages, and no line for each of them
    assert "Successfully installed" in log.read_text()  # pip's own words, kept in the log
    if tty:  # the status line, rewritten in place, named what was being fetched
        assert "\r\x1b[K" in shown and "fetching part_" in shown
    else:
        assert "\r" not in shown and "\x1b" not in shown


def test_a_failing_install_shows_pip_s_error_and_last_lines(tmp_path: Path) -> None:
    status, shown, log = pip_install(tmp_path, "no-such-package-here", tty=False)
    assert status != 0
    assert "ERROR: Could not find a version that satisfies the requirement" in shown
    assert "pip failed after" in shown
    assert "no-such-package-here" in log.read_text()
