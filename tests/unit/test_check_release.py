"""The release check's rules (``tools/check_release.py``), on the real pyproject and on
modules imported by its real probe: which extras a module needs (declared by prefix, core by
default, so new modules need no entry), which import failures are fine (naming the extra to
install) and which are problems. The whole check, with its builds and virtualenvs, runs in CI
(``.ci/run``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check = load("check_release")
CONFIG = check.Config.load(ROOT)


def test_every_prefix_of_the_config_names_modules_of_the_source_tree() -> None:
    modules = check.source_modules(ROOT)
    for prefix in [*CONFIG.module_extras, *CONFIG.pending]:
        assert any(m == prefix or m.startswith(prefix + ".") for m in modules), prefix


def test_a_module_needs_the_extras_of_its_longest_prefix_and_none_by_default() -> None:
    config = check.Config(extras={"redis": [], "fast": []},
                          module_extras={"pkg.stores": frozenset({"redis"}),
                                         "pkg.stores.fast": frozenset({"redis", "fast"})},
                          profiles=[], must_not_install={}, pending=[])
    assert config.needs("pkg.stores") == {"redis"}
    assert config.needs("pkg.stores.redis.cluster") == {"redis"}  # a module added later
    assert config.needs("pkg.stores.fast.parser") == {"redis", "fast"}
    assert config.needs("pkg.storesque") == frozenset()  # prefixes end at a dot
    assert config.needs("pkg.session") == frozenset()


def test_the_profiles_are_the_core_each_declared_set_and_the_configured_ones() -> None:
    profiles = CONFIG.all_profiles()
    assert profiles[0] == frozenset()
    assert len(profiles) == len(set(profiles))
    assert set(CONFIG.module_extras.values()) | set(CONFIG.profiles) <= set(profiles)
    assert frozenset({"flask", "redis"}) in profiles  # what a Flask app on Redis installs


def test_all_expands_to_every_extra_but_the_development_ones() -> None:
    assert CONFIG.expand(["all"]) == set(CONFIG.extras) - {"bench", "dev", "testing"}
    assert CONFIG.expand(["redis"]) == {"redis"}


PACKAGE_FILES = {
    "__init__.py": "",
    "fine.py": "import json\n",
    "bare.py": "import no_such_driver_here\n",
    "named.py": "raise ImportError(\"needs the driver: pip install 'sessionkit[redis]'\")\n",
    "config.py": "from sessionkit.errors import ConfigError\n"
                 "raise ConfigError(\"pip install 'sessionkit[flask,sql]'\")\n",
    "broken.py": "raise RuntimeError('boom')\n",
}


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What the real probe reports for each module of a small package."""
    root = tmp_path_factory.mktemp("probe")
    (root / "pkg").mkdir()
    for name, text in PACKAGE_FILES.items():
        (root / "pkg" / name).write_text(text)
    modules = [f"pkg.{name[:-3]}" for name in PACKAGE_FILES if name != "__init__.py"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "release_probe.py"), *modules], cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)])},
        capture_output=True, text=True, timeout=120, check=True)
    return {r["module"]: r for r in map(json.loads, done.stdout.splitlines())}


def verdicts(probed: dict[str, dict[str, Any]], installed: set[str],
             pending: tuple[str, ...] = ()) -> dict[str, str]:
    config = check.Config(
        extras={"redis": [], "sql": [], "flask": []},
        module_extras={"pkg.bare": frozenset({"redis"}), "pkg.named": frozenset({"redis"}),
                       "pkg.config": frozenset({"sql"}), "pkg.broken": frozenset({"redis"})},
        profiles=[], must_not_install={}, pending=list(pending))
    return {m: check.verdict(config, frozenset(installed), r) for m, r in probed.items()}


def test_without_its_extra_a_module_may_fail_only_naming_the_extra(
        probed: dict[str, dict[str, Any]]) -> None:
    found = verdicts(probed, set())
    assert found["pkg.fine"] == "imported"
    assert found["pkg.named"] == "named_extra"
    assert found["pkg.config"] == "named_extra"  # ConfigError, naming sql among others
    assert "does not name the extra to install (pip install 'sessionkit[redis]')" in found[
        "pkg.bare"]
    assert "No module named 'no_such_driver_here'" in found["pkg.bare"]
    assert "RuntimeError: boom" in found["pkg.broken"]


def test_with_its_extras_installed_a_module_must_import(
        probed: dict[str, dict[str, Any]]) -> None:
    found = verdicts(probed, {"redis", "sql"})
    for module in ("pkg.bare", "pkg.named", "pkg.config", "pkg.broken"):
        assert "does not import although" in found[module], module


def test_a_listed_bare_import_error_is_reported_apart(probed: dict[str, dict[str, Any]]
                                                      ) -> None:
    found = verdicts(probed, set(), pending=("pkg.bare", "pkg.broken"))
    assert found["pkg.bare"] == "pending"
    assert "RuntimeError: boom" in found["pkg.broken"]  # only a missing module is tolerated
