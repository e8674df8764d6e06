"""Reading a peer's test results (JUnit XML) and judging them against the documented
differences: a peer test may fail under sessionkit only where differences.toml says why."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

DIFFERENCES = Path(__file__).with_name("differences.toml")
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    test: str  # the pytest node id, relative to the peer's source tree
    status: str  # "passed", "failed" (a failure or an error) or "skipped"
    message: str = ""


@dataclass(frozen=True)
class Difference:
    peer: str
    test: str
    row: str  # the id of the row of docs/coming-from-peers.md that explains it
    why: str = ""


def _node_id(file: str, classname: str, name: str) -> str:
    module = file[:-3].replace("/", ".") if file.endswith(".py") else file
    classes = classname[len(module) + 1:].split(".") if classname.startswith(module + ".") else []
    return "::".join([file, *classes, name]) if name else file


def read_junit(path: Path) -> dict[str, Outcome]:
    """Outcomes by node id from pytest's ``--junitxml`` with ``junit_family=xunit1`` (whose
    ``file`` attribute makes the node id exact)."""
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test = _node_id(case.get("file") or "", case.get("classname") or "", case.get("name") or "")
        problems = [child for child in case if child.tag in ("failure", "error")]
        if problems:
            message = " | ".join((p.get("message") or p.tag).strip() for p in problems)
            outcome = Outcome(test, "failed", message[:MESSAGE_CHARS])
        elif case.find("skipped") is not None:
            outcome = Outcome(test, "skipped")
        else:
            outcome = Outcome(test, "passed")
        earlier = outcomes.get(test)  # a teardown error comes as a second case of the test
        if earlier is None or earlier.status != "failed":
            outcomes[test] = outcome
    return outcomes


def load_differences(path: Path = DIFFERENCES) -> list[Difference]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found = []
    for entry in data.get("difference", []):
        unknown = set(entry) - {"peer", "test", "row", "why"}
        if unknown or not {"peer", "test", "row"} <= set(entry):
            raise ValueError(f"{path.name}: an entry needs peer, test and row (and may have "
                             f"why), not {sorted(entry)}")
        found.append(Difference(entry["peer"], entry["test"], entry["row"], entry.get("why", "")))
    seen: set[tuple[str, str]] = set()
    for difference in found:
        if (difference.peer, difference.test) in seen:
            raise ValueError(f"{path.name}: {difference.test} is listed twice")
        seen.add((difference.peer, difference.test))
    return found


@dataclass
class Verdict:
    peer: str
    ran: int = 0
    passed: int = 0
    #: Fail under sessionkit, pass on the peer's own machinery, and are not listed.
    unexpected: list[Outcome] = field(default_factory=list)
    #: Fail under sessionkit, as listed.
    documented: list[tuple[Outcome, Difference]] = field(default_factory=list)
    #: Listed, yet pass under sessionkit: the entry must go.
    stale: list[Difference] = field(default_factory=list)
    #: Listed, but no such test ran (another release of the peer names its tests otherwise).
    unrun: list[Difference] = field(default_factory=list)
    #: Fail on the peer's own machinery too (the environment's doing, not sessionkit's).
    not_judged: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.stale

    def summary(self) -> str:
        lines = [
            f"{self.peer}: {self.ran} peer tests ran under sessionkit: {self.passed} passed, "
            f"{len(self.documented)} failed as documented, {len(self.unexpected)} failed "
            f"unexpectedly, {len(self.not_judged)} not judged (fail without sessionkit too), "
            f"{len(self.stale)} listed but passing, {len(self.unrun)} listed but not run"
        ]
        for outcome in self.unexpected:
            lines.append(f"  UNEXPECTED {outcome.test}\n      {_one_line(outcome.message)}")
        for difference in self.stale:
            lines.append(f"  PASSES NOW (remove from differences.toml) {difference.test}")
        for difference in self.unrun:
            lines.append(f"  NOT RUN (listed for another release?) {difference.test}")
        for outcome, difference in self.documented:
            lines.append(f"  documented [{difference.row}] {outcome.test}")
        for outcome in self.not_judged:
            lines.append(f"  not judged {outcome.test}: {_one_line(outcome.message)[:120]}")
        return "\n".join(lines)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def judge(peer: str, substituted: dict[str, Outcome], baseline: dict[str, Outcome],
          differences: list[Difference]) -> Verdict:
    listed = {d.test: d for d in differences if d.peer == peer}
    verdict = Verdict(peer, ran=len(substituted))
    for test, outcome in sorted(substituted.items()):
        if outcome.status == "passed":
            verdict.passed += 1
            if test in listed:
                verdict.stale.append(listed[test])
        elif outcome.status == "failed":
            if test in baseline and baseline[test].status == "failed":
                verdict.not_judged.append(outcome)
            elif test in listed:
                verdict.documented.append((outcome, listed[test]))
            else:
                verdict.unexpected.append(outcome)
    verdict.unrun = [d for test, d in sorted(listed.items()) if test not in substituted]
    return verdict
