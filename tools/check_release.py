#!/usr/bin/env python3
"""The release check: what a user gets from ``pip install 'sessionkit[...]'``.

    python3 tools/check_release.py [--work DIR] [--timeout SECONDS]

1. Builds the sdist and the wheel with ``python -m build`` (the wheel from the sdist, so the
   sdist holds what a build needs) and checks them: ``twine check --strict``; the version in
   the file names and the metadata is the one of ``sessionkit/_version.py``; the extras are
   pyproject's; the wheel holds every module of the source tree and ``py.typed``.
2. Installs the wheel into clean virtualenvs, one per *profile* (a set of extras), and imports
   every module of the package in each, each in a fresh process:
   - a module whose extras are all installed must import;
   - any other module must import, or fail with an ImportError or ConfigError whose message
     names an extra to install (``pip install 'sessionkit[redis]'``).
   ``pip check`` must pass; the core profile (no extra) also runs the ``sessionkit`` command
   and reads the installed version.

What each part of the package needs is declared in pyproject.toml under
``[tool.sessionkit.release-check]``: ``module-extras`` maps module prefixes to extras (the
longest matching prefix wins; any other module is core and needs no extra). Modules are found
by walking the wheel, so a new module is checked without editing anything, and a new part
that needs an extra is one line there. The profiles are the core, each set of extras named in
``module-extras``, and the sets users install together listed in ``profiles``.

Needs ``build`` and ``twine`` (both in sessionkit[dev]); under an interpreter without them
they are installed into a scratch virtualenv first. Bounded: every step has a timeout and the
whole run a deadline (``--timeout``, 900 s by default). Exit status 0 when everything holds,
1 with the list of problems otherwise, 2 for a run that could not be made.
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sessionkit"
PROBE = Path(__file__).resolve().with_name("release_probe.py")
STEP_SECONDS = 600
EXTRA_NAMED = re.compile(rf"{PACKAGE}\[([A-Za-z0-9_,\s-]+)\]")


class CannotRun(RuntimeError):
    """A step could not be carried out (a tool failed, the deadline passed)."""


# --- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """pyproject.toml's extras and ``[tool.sessionkit.release-check]``."""

    extras: dict[str, list[str]]
    module_extras: dict[str, frozenset[str]]
    profiles: list[frozenset[str]]
    must_not_install: dict[frozenset[str], list[str]]
    pending: list[str]

    @classmethod
    def load(cls, root: Path) -> Config:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text())
        extras: dict[str, list[str]] = pyproject["project"].get("optional-dependencies", {})
        section = pyproject.get("tool", {}).get(PACKAGE, {}).get("release-check", {})
        config = cls(
            extras=extras,
            module_extras={prefix: frozenset(names)
                           for prefix, names in section.get("module-extras", {}).items()},
            profiles=[frozenset(p) for p in section.get("profiles", [])],
            must_not_install={frozenset(k.split(",")): v
                              for k, v in section.get("must-not-install", {}).items()},
            pending=list(section.get("bare-import-errors", [])),
        )
        unknown = {name for names in [*config.module_extras.values(), *config.profiles,
                                      *config.must_not_install]
                   for name in names} - set(extras)
        if unknown:
            raise CannotRun(f"[tool.{PACKAGE}.release-check] names extras pyproject does not "
                            f"declare: {', '.join(sorted(unknown))}")
        return config

    def expand(self, names: Iterable[str]) -> frozenset[str]:
        """The extras ``names`` installs, with ``sessionkit[...]`` references followed
        (``all`` is every extra it lists)."""
        found: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in found:
                continue
            found.add(name)
            for requirement in self.extras.get(name, []):
                if re.match(rf"{PACKAGE}\s*\[", requirement):
                    todo.extend(n.strip() for n in requirement.split("[", 1)[1]
                                .split("]", 1)[0].split(","))
        return frozenset(found)

    def needs(self, module: str) -> frozenset[str]:
        """The extras ``module`` needs: those of its longest declared prefix, else none."""
        matches = [p for p in self.module_extras if module == p or module.startswith(p + ".")]
        return self.module_extras[max(matches, key=len)] if matches else frozenset()

    def all_profiles(self) -> list[frozenset[str]]:
        """The core, each set of extras a module needs, and the configured sets; no repeats."""
        found: list[frozenset[str]] = [frozenset()]
        for profile in [*sorted(set(self.module_extras.values()), key=sorted), *self.profiles]:
            if profile not in found:
                found.append(profile)
        return found


def label(profile: frozenset[str]) -> str:
    return f"{PACKAGE}[{','.join(sorted(profile))}]" if profile else f"{PACKAGE} (core)"


# --- running things, within the deadline ---------------------------------------------------------
class Runner:
    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self, command: Sequence[str | Path], what: str, cwd: Path | None = None,
            seconds: float = STEP_SECONDS) -> str:
        """Run ``command``; its output, or ``CannotRun`` with the output's tail."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CannotRun(f"out of time before {what}")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        try:
            done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=min(seconds, left), check=False)
        except subprocess.TimeoutExpired:
            raise CannotRun(f"{what} took more than {min(seconds, left):.0f}s") from None
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-25:])
            raise CannotRun(f"{what} failed ({done.returncode}):\n{tail}")
        return done.stdout


def say(text: str) -> None:
    print(f"release-check: {text}", flush=True)


class Problems:
    """What failed; one entry per distinct problem, with the profiles it was seen in."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def add(self, text: str, profile: frozenset[str] | None = None) -> None:
        where = self.seen.setdefault(text, [])
        if profile is not None:
            where.append(label(profile))

    def __len__(self) -> int:
        return len(self.seen)

    def lines(self) -> list[str]:
        return [text + (f"\n    in {', '.join(where)}" if where else "")
                for text, where in self.seen.items()]


def tools_python(runner: Runner, work: Path) -> Path:
    """An interpreter with ``build`` and ``twine``: this one, else a scratch virtualenv."""
    if all(importlib.util.find_spec(name) is not None for name in ("build", "twine")):
        return Path(sys.executable)
    venv = work / "tools-venv"
    say("installing build and twine into a scratch virtualenv")
    runner.run([sys.executable, "-m", "venv", venv], "creating the tools virtualenv")
    python = venv_python(venv)
    runner.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                "build>=1.2", "twine>=5"], "installing build and twine")
    return python


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# --- the artifacts -------------------------------------------------------------------------------
def source_version(root: Path) -> str:
    found = re.search(r'^__version__ = "([^"]+)"$',
                      (root / PACKAGE / "_version.py").read_text(), re.MULTILINE)
    if found is None:
        raise CannotRun(f"{PACKAGE}/_version.py has no __version__ = \"...\" line")
    return found.group(1)


def source_modules(root: Path) -> list[str]:
    return sorted(module_name(p.relative_to(root).as_posix())
                  for p in (root / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def wheel_modules(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(module_name(name) for name in archive.namelist()
                      if name.startswith(f"{PACKAGE}/") and name.endswith(".py"))


def check_artifacts(runner: Runner, python: Path, config: Config, sdist: Path, wheel: Path,
                    problems: Problems) -> list[str]:
    """twine, then the metadata and file lists against the source tree; the wheel's modules."""
    runner.run([python, "-m", "twine", "check", "--strict", sdist, wheel], "twine check")
    say("twine check --strict: passed")
    version = source_version(ROOT)
    for artifact in (sdist, wheel):
        if not artifact.name.startswith(f"{PACKAGE}-{version}"):
            problems.add(f"{artifact.name} is not version {version} (sessionkit/_version.py)")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_path = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(metadata_path).decode())
    if metadata["Version"] != version:
        problems.add(f"the wheel's metadata says version {metadata['Version']}, "
                        f"sessionkit/_version.py {version}")
    declared = set(metadata.get_all("Provides-Extra") or [])
    if declared != set(config.extras):
        problems.add(f"the wheel's extras {sorted(declared)} are not pyproject's "
                        f"{sorted(config.extras)}")
    if metadata["Description-Content-Type"] != "text/markdown" or not metadata.get_payload():
        problems.add("the wheel's long description is missing or not markdown")
    if f"{PACKAGE}/py.typed" not in names:
        problems.add(f"the wheel has no {PACKAGE}/py.typed (it is declared Typing :: Typed)")
    modules, sources = wheel_modules(wheel), source_modules(ROOT)
    if modules != sources:
        problems.add(f"the wheel's modules are not the source tree's: left out "
                     f"{sorted(set(sources) - set(modules))}, added "
                     f"{sorted(set(modules) - set(sources))}")
    with tarfile.open(sdist) as archive:
        inside = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for wanted in ("pyproject.toml", "README.md", "CHANGELOG.md", f"{PACKAGE}/_version.py"):
        if wanted not in inside:
            problems.add(f"the sdist has no {wanted}")
    say(f"metadata: version {version}, extras {', '.join(sorted(declared))}; "
        f"{len(modules)} modules in the wheel")
    return modules


# --- the profiles --------------------------------------------------------------------------------
@dataclass
class Outcome:
    profile: frozenset[str]
    imported: list[str] = field(default_factory=list)
    named_extra: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    distributions: int = 0
    seconds: float = 0.0


def verdict(config: Config, installed: frozenset[str], result: dict[str, Any]) -> str:
    """``imported``, ``named_extra``, ``pending`` (a known bare import error), or a problem."""
    module = result["module"]
    if result["ok"]:
        return "imported"
    needs = config.needs(module)
    error = f"{result['type']}: {result['message']}"
    if needs <= installed:
        return "\n      ".join([f"{module} does not import although {label(needs)} is "
                                 f"installed: {error}", *result["where"]])
    missing = needs - installed
    named = {n.strip() for m in EXTRA_NAMED.findall(result["message"]) for n in m.split(",")}
    import_or_config = any(c in ("builtins.ImportError", f"{PACKAGE}.errors.ConfigError")
                           for c in result["classes"])
    if import_or_config and named & missing:
        return "named_extra"
    if (any(module == p or module.startswith(p + ".") for p in config.pending)
            and result["type"] == "ModuleNotFoundError"):
        return "pending"
    return (f"{module} fails without {', '.join(sorted(missing))} but does not name the extra "
            f"to install (pip install '{PACKAGE}[{','.join(sorted(missing))}]'): {error}")


def check_profile(runner: Runner, python: Path, config: Config, profile: frozenset[str],
                  wheel: Path, wheelhouse: Path, modules: list[str], work: Path,
                  problems: Problems) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(profile)
    venv = work / ("venv-" + ("-".join(sorted(profile)) or "core"))
    runner.run([sys.executable, "-m", "venv", "--without-pip", venv], f"venv for {label(profile)}")
    target = venv_python(venv)
    requirement = f"{wheel}[{','.join(sorted(profile))}]" if profile else str(wheel)
    pip: list[str | Path] = [python, "-m", "pip", "--python", target]
    runner.run([*pip, "install", "-q", "--disable-pip-version-check", "--no-index",
                "--find-links", wheelhouse, requirement], f"installing {label(profile)}")
    runner.run([*pip, "check"], f"pip check in {label(profile)}")
    listed = json.loads(runner.run(
        [target, "-I", "-c", "import importlib.metadata as m, json; print(json.dumps(sorted("
         "{d.metadata['Name'].lower() for d in m.distributions()})))"],
        f"listing {label(profile)}", cwd=work))
    outcome.distributions = len(listed)
    installed = config.expand(profile)
    for forbidden in config.must_not_install.get(profile, []):
        if forbidden.lower() in listed:
            problems.add(f"{label(profile)} installs {forbidden}, which it must not need")
    output = runner.run([target, "-I", PROBE, *modules], f"importing in {label(profile)}",
                        cwd=work, seconds=300)
    for line in output.splitlines():
        result = json.loads(line)
        if result["ok"] and not str(result.get("file") or "").startswith(str(venv)):
            problems.add(f"{result['module']} was imported from {result['file']}, not from "
                         f"the wheel installed in {venv}")
        found = verdict(config, installed, result)
        if found in ("imported", "named_extra", "pending"):
            getattr(outcome, found).append(result["module"])
        else:
            problems.add(found, profile)
    if not profile:
        check_core(runner, venv, target, work, problems)
    outcome.seconds = time.monotonic() - started
    say(f"{label(profile)}: {outcome.distributions} distributions installed; "
        f"{len(outcome.imported)} "
        f"modules import, {len(outcome.named_extra)} name the extra they need"
        + (f", {len(outcome.pending)} fail with a bare import error (listed in "
           f"bare-import-errors)" if outcome.pending else "")
        + f" ({outcome.seconds:.0f}s)")
    return outcome


def check_core(runner: Runner, venv: Path, python: Path, work: Path, problems: Problems
               ) -> None:
    """With no extra: the installed version is the source's, and the command runs."""
    version = runner.run([python, "-I", "-c", "import importlib.metadata as m, sessionkit; "
                          f"print(sessionkit.__version__, m.version('{PACKAGE}'))"],
                         "reading the version", cwd=work).split()
    if version != [source_version(ROOT)] * 2:
        problems.add(f"installed __version__ and metadata say {version}, the source "
                        f"{source_version(ROOT)}")
    command = venv / ("Scripts" if os.name == "nt" else "bin") / PACKAGE
    if "lb-config" not in runner.run([command, "--help"], "sessionkit --help", cwd=work):
        problems.add("`sessionkit --help` does not list its commands")


def check_prefixes(config: Config, modules: list[str], problems: Problems) -> None:
    """Every prefix of the config names modules of the wheel (a moved module leaves none)."""
    for section, prefixes in (("module-extras", config.module_extras),
                              ("bare-import-errors", config.pending)):
        for prefix in prefixes:
            if not any(m == prefix or m.startswith(prefix + ".") for m in modules):
                problems.add(f"{prefix} (in {section} of [tool.{PACKAGE}.release-check]) is "
                             f"no module of the wheel: moved or renamed?")


def check_pending(config: Config, outcomes: list[Outcome], problems: Problems) -> None:
    """A prefix in ``bare-import-errors`` whose modules all name their extra now must go."""
    still = sorted({m for outcome in outcomes for m in outcome.pending})
    for prefix in config.pending:
        if not any(m == prefix or m.startswith(prefix + ".") for m in still):
            problems.add(f"{prefix} now names the extra it needs (or imports): remove it "
                         f"from bare-import-errors in pyproject.toml")
    if still:
        say(f"without their extra, {', '.join(still)} fail with a bare ModuleNotFoundError "
            "instead of naming the extra to install (bare-import-errors in pyproject.toml)")


# --- the command ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/check_release.py",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="keep the artifacts and virtualenvs here")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    args = parser.parse_args(argv)
    runner = Runner(args.timeout)
    work = args.work or Path(tempfile.mkdtemp(prefix="sessionkit-release-"))
    work.mkdir(parents=True, exist_ok=True)
    problems = Problems()
    try:
        config = Config.load(ROOT)
        python = tools_python(runner, work)
        dist = work / "dist"
        shutil.rmtree(dist, ignore_errors=True)
        runner.run([python, "-m", "build", "--outdir", dist, ROOT], "python -m build")
        (sdist,) = dist.glob("*.tar.gz")
        (wheel,) = dist.glob("*.whl")
        say(f"built {sdist.name} and {wheel.name} ({runner.elapsed():.0f}s)")
        modules = check_artifacts(runner, python, config, sdist, wheel, problems)
        check_prefixes(config, modules, problems)
        wheelhouse = work / "wheelhouse"
        profiles = config.all_profiles()
        used = sorted(frozenset().union(*map(config.expand, profiles)))
        runner.run([python, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                    "--wheel-dir", wheelhouse, f"{wheel}[{','.join(used)}]"],
                   "collecting the dependencies of the extras")
        outcomes = [check_profile(runner, python, config, profile, wheel, wheelhouse, modules,
                                  work, problems)
                    for profile in profiles]
        check_pending(config, outcomes, problems)
    except CannotRun as exc:
        say(f"could not run: {exc}")
        return 2
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if problems:
        say(f"FAILED after {runner.elapsed():.0f}s, {len(problems)} problems:")
        for problem in problems.lines():
            print(f"  - {problem}", flush=True)
        return 1
    say(f"passed in {runner.elapsed():.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
