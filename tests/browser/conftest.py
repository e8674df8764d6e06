"""Headless Debian Chromium driven by Playwright for Python: the browser is the system's
``/usr/bin/chromium`` (never a browser download). Screenshots go to ``$SESSIONKIT_ARTIFACTS``
(default ``tests-artifacts/browser/``), printed at the end of the run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import unavailable

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    found = Path(os.environ.get("SESSIONKIT_ARTIFACTS") or ROOT / "tests-artifacts" / "browser")
    found.mkdir(parents=True, exist_ok=True)
    return found


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest) -> Iterator[Path]:
    folder = artifacts_dir()
    yield folder
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line("")
            reporter.write_line(f"browser screenshots: {folder}")
            for shot in sorted(folder.glob("*.png")):
                reporter.write_line(f"  {shot}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped, never longer: while Playwright's sync API is open, the main thread runs
    its event loop, and every later test calling ``asyncio.run`` would fail."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
