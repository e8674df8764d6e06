"""The peers whose own tests sessionkit must pass, and where their tests come from.

Each peer's tests are taken from its released source distribution on PyPI, at the version
installed here, so the tests match the code they were written for. A peer whose sdist ships no
tests (starsessions) runs only from a checkout named in an environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeerSuite:
    name: str
    #: The PyPI distribution whose installed version is tested.
    distribution: str
    #: The peer's test files that concern sessions, relative to its source tree.
    test_files: tuple[str, ...]
    #: Where the tests come from: ``"sdist"`` (PyPI) or ``"checkout"`` (``checkout_variable``).
    source: str = "sdist"
    checkout_variable: str | None = None
    #: Test-only packages the peer's tests import that sessionkit[dev] lacks: installed without
    #: dependencies into a directory used only by the peer's run.
    test_requirements: tuple[str, ...] = ()
    #: Extra pytest arguments, each for a reason given beside it.
    pytest_args: tuple[str, ...] = ()


SUITES = {
    suite.name: suite
    for suite in (
        PeerSuite(
            name="starlette",
            distribution="starlette",
            test_files=("tests/middleware/test_session.py", "tests/middleware/test_middleware.py"),
            # One event loop is enough; the trio variants (run where trio is installed) would
            # only double every id.
            pytest_args=("-k", "not trio"),
        ),
        PeerSuite(
            name="flask",
            distribution="flask",
            # Every Flask test file that uses the session (test_json_tag.py tests the tagged
            # serializer alone, without a session, and is left out).
            test_files=(
                "tests/test_basic.py", "tests/test_reqctx.py", "tests/test_testing.py",
                "tests/test_helpers.py", "tests/test_signals.py", "tests/test_templating.py",
                "tests/test_converters.py", "tests/test_session_interface.py",
            ),
            test_requirements=("asgiref",),  # async views (Flask's "async" extra)
        ),
        PeerSuite(
            name="starsessions",
            distribution="starsessions",
            # Its middleware and session-lifetime tests. tests/test_session.py is left out: it
            # builds starsessions' SessionHandler (private API, by its docstring) by hand, so it
            # never meets the middleware; its stores' and serializers' tests neither.
            test_files=(
                "tests/test_middleware.py", "tests/test_autoloading.py",
                "tests/test_rolling_session.py", "tests/test_expiring_session.py",
                "tests/test_metadata.py",
            ),
            source="checkout",
            checkout_variable="SESSIONKIT_PEER_STARSESSIONS_SOURCE",
            test_requirements=("pytest-asyncio",),
            # Its addopts name pytest-cov's --no-cov-on-fail, a plugin nothing here needs.
            pytest_args=("-o", "addopts=--tb=short"),
        ),
    )
}
