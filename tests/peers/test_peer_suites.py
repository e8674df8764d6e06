"""The peers' own session tests, run against sessionkit standing in for each peer.

For each peer (Starlette's SessionMiddleware, Flask's cookie session, starsessions), its test
files come from its released sdist at the installed version; they run twice in a subprocess:
on the peer's own machinery (the baseline) and with ``peer_substitution`` making the peer's
session machinery sessionkit's. A test that passes in the baseline and fails under sessionkit
must be listed in differences.toml, with the row of docs/coming-from-peers.md that explains
it; a listed test that passes makes the check fail too, so the list only shrinks.

Rerun on any checkout: ``python3 dev.py test tests/peers -s`` (``-s`` prints each peer's
summary). A peer whose tests cannot be downloaded is skipped, or failed under
SESSIONKIT_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.peers.runner import run_peer_tests
from tests.peers.sources import NotConfigured, Unavailable, peer_tree, requirements_dir
from tests.peers.suites import SUITES
from tests.peers.verdict import judge, load_differences
from tests.support import unavailable

DOCS = Path(__file__).resolve().parents[2] / "docs" / "coming-from-peers.md"


@pytest.fixture(scope="session")
def peer_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where downloaded sdists and extracted tests are kept between runs:
    SESSIONKIT_PEER_CACHE, else pytest's cache directory, else this run's temporary one."""
    configured = os.environ.get("SESSIONKIT_PEER_CACHE")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("sessionkit-peers"))
    return tmp_path_factory.mktemp("sessionkit-peers")


@pytest.mark.parametrize("peer", list(SUITES))
def test_peer_suite(peer: str, peer_cache: Path, tmp_path: Path) -> None:
    suite = SUITES[peer]
    try:
        tree = peer_tree(suite, peer_cache)
        extra_path = requirements_dir(suite, peer_cache)
    except NotConfigured as reason:
        pytest.skip(str(reason))
    except Unavailable as reason:
        unavailable(f"{suite.distribution}'s own tests cannot be had: {reason}")
    baseline = run_peer_tests(suite, tree, tmp_path / "baseline", substitute=False,
                              extra_path=extra_path)
    ours = run_peer_tests(suite, tree, tmp_path / "sessionkit", substitute=True,
                          extra_path=extra_path)
    evidence = ours.evidence
    assert evidence.get("replaced"), f"the substitution did nothing: {evidence}"
    assert not evidence["modules_holding_the_peers_own"], (
        f"peer modules kept the peer's own session machinery: {evidence}")
    if peer == "flask":
        assert evidence["flask_apps_given_sessionkit"] > 0, evidence
    else:
        assert evidence["modules_holding_sessionkit"], evidence
    verdict = judge(peer, ours.outcomes, baseline.outcomes, load_differences())
    print(f"\n{verdict.summary()}\n  ({baseline.seconds:.1f} s baseline, {ours.seconds:.1f} s "
          f"under sessionkit; output: {ours.output})")
    if not verdict.ok:
        pytest.fail(verdict.summary(), pytrace=False)


def test_every_difference_names_a_documented_row() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\|\s*`?([a-z0-9][a-z0-9-]*)`?\s*\|", text, flags=re.MULTILINE))
    for difference in load_differences():
        assert difference.peer in SUITES, difference
        assert difference.row in rows, f"{difference.row} is no row of {DOCS.name}"
