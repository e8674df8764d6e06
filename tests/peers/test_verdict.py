"""The peer-suite check itself: node ids read back from pytest's JUnit XML exactly (classes,
parameters, teardown errors), and the judgement that lets a peer test fail only as listed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.peers.verdict import Difference, Outcome, judge, load_differences, read_junit

PEER_TESTS = '''
import pytest

def test_passes():
    pass

def test_fails():
    assert 1 == 2, "one is not two"

@pytest.mark.parametrize("x", ["a", "b/c"])
def test_param(x):
    assert x == "a"

class TestGroup:
    def test_in_class(self):
        pass

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown_error(broken_teardown):
    pass

def test_skipped():
    pytest.skip("not here")
'''


def test_junit_node_ids_are_exact(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_peer.py").write_text(textwrap.dedent(PEER_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), "-c", str(tmp_path / "pytest.ini"), f"--junitxml={junit}",
         "-o", "junit_family=xunit1", "tests/test_peer.py"],
        cwd=tmp_path, capture_output=True, timeout=120, check=False,
    )
    outcomes = read_junit(junit)
    status = {test.split("::", 1)[1]: outcome.status for test, outcome in outcomes.items()}
    assert status == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_param[a]": "passed",
        "test_param[b/c]": "failed",
        "TestGroup::test_in_class": "passed",
        "test_teardown_error": "failed",
        "test_skipped": "skipped",
    }
    assert all(test.startswith("tests/test_peer.py::") for test in outcomes)
    assert "one is not two" in outcomes["tests/test_peer.py::test_fails"].message
    assert "teardown broke" in outcomes["tests/test_peer.py::test_teardown_error"].message


def _outcomes(**status: str) -> dict[str, Outcome]:
    return {name: Outcome(name, value, f"{name} {value}") for name, value in status.items()}


def test_judgement() -> None:
    ours = _outcomes(same="passed", listed="failed", unlisted="failed", env="failed",
                     fixed="passed", skipped="skipped")
    baseline = _outcomes(same="passed", listed="passed", unlisted="passed", env="failed",
                         fixed="passed", skipped="skipped")
    listed = [Difference("p", "listed", "row"), Difference("p", "fixed", "row"),
              Difference("p", "renamed", "row"), Difference("other", "unlisted", "row")]
    verdict = judge("p", ours, baseline, listed)
    assert [o.test for o in verdict.unexpected] == ["unlisted"]
    assert [(o.test, d.row) for o, d in verdict.documented] == [("listed", "row")]
    assert [d.test for d in verdict.stale] == ["fixed"]
    assert [d.test for d in verdict.unrun] == ["renamed"]
    assert [o.test for o in verdict.not_judged] == ["env"]
    assert (verdict.ran, verdict.passed) == (6, 2)
    assert not verdict.ok
    assert "UNEXPECTED unlisted" in verdict.summary()
    assert "PASSES NOW (remove from differences.toml) fixed" in verdict.summary()
    clean = judge("p", _outcomes(listed="failed", same="passed"), {}, listed[:1])
    assert clean.ok


def test_differences_file_is_well_formed(tmp_path: Path) -> None:
    assert load_differences()  # the real file parses
    bad = tmp_path / "differences.toml"
    bad.write_text('[[difference]]\npeer = "flask"\ntest = "t"\n')
    with pytest.raises(ValueError, match="needs peer, test and row"):
        load_differences(bad)
    bad.write_text('[[difference]]\npeer = "flask"\ntest = "t"\nrow = "r"\n' * 2)
    with pytest.raises(ValueError, match="listed twice"):
        load_differences(bad)
