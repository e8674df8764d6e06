"""The substitution: a pytest plugin loaded into a peer's own test run (``-p
peer_substitution``) that makes the peer's session machinery sessionkit's.

This module is the whole mapping, in one place. It is copied beside the peer's extracted tests
and imported by their pytest before any peer test module, so ``from
starlette.middleware.sessions import SessionMiddleware`` in a peer test gets sessionkit's class.
Constructor arguments pass through untouched and no setting is added: a test fails exactly where
an app that swapped the import would.

``SESSIONKIT_PEER_SUBSTITUTE`` names the peer; ``off`` runs the peer's tests on its own
machinery (the baseline: a test that fails there is not sessionkit's doing).
``SESSIONKIT_PEER_REPORT`` is where the evidence that the substitution took effect is written.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from typing import Any

#: starsessions' public names, each with the modules it can be imported from (the package,
#: and the module that defines it).
_STARSESSIONS_NAMES: dict[str, tuple[str, ...]] = {
    "SessionMiddleware": ("starsessions", "starsessions.middleware"),
    "SessionAutoloadMiddleware": ("starsessions", "starsessions.middleware"),
    **dict.fromkeys((
        "load_session", "is_loaded", "get_session_id", "regenerate_session_id",
        "get_session_metadata", "get_session_remaining_seconds",
    ), ("starsessions", "starsessions.session")),
    "SessionStore": ("starsessions", "starsessions.stores", "starsessions.stores.base"),
    "InMemoryStore": ("starsessions", "starsessions.stores", "starsessions.stores.memory"),
    "CookieStore": ("starsessions", "starsessions.stores", "starsessions.stores.cookie"),
    "RedisStore": ("starsessions.stores.redis",),
    "Serializer": ("starsessions", "starsessions.serializers"),
    "JsonSerializer": ("starsessions", "starsessions.serializers"),
    **dict.fromkeys(("SessionError", "SessionNotLoaded", "ImproperlyConfigured"),
                    ("starsessions", "starsessions.exceptions")),
    "SessionMetadata": ("starsessions.types",),
}

#: peer -> [(the peer's object, sessionkit's object)], each as "module:attribute".
REPLACEMENTS: dict[str, list[tuple[str, str]]] = {
    "starlette": [
        ("starlette.middleware.sessions:SessionMiddleware", "sessionkit.asgi:SessionMiddleware"),
        # What request.session is under Starlette's middleware (Starlette >= 1.0 tests it
        # directly): under sessionkit's middleware it is sessionkit's Session.
        ("starlette.middleware.sessions:Session", "sessionkit.session:Session"),
    ],
    # Every public name of starsessions, wherever an app may import it from, is the one of
    # sessionkit.compat.starsessions: the module such an app imports instead (see
    # ``_STARSESSIONS_NAMES``).
    "starsessions": [
        (f"{module}:{name}", f"sessionkit.compat.starsessions:{name}")
        for name, modules in _STARSESSIONS_NAMES.items() for module in modules
    ],
    # Flask has no session class to swap: every app that has Flask's default cookie session
    # gets ``SessionKit(app)`` (no arguments: only Flask's own config) as it is created; an app
    # class that brings its own session interface keeps it. See
    # ``_every_flask_app_gets_sessionkit``.
    "flask": [],
}

#: The peer's public names that sessionkit has no counterpart for. They stay the peer's own,
#: so a test using them fails and shows the gap.
UNMAPPED: dict[str, list[str]] = {
    "starlette": [],
    "flask": [],
    # The low-level session handler (private API, by its own docstring) and starsessions'
    # id format: sessionkit issues ids of its own, when a session is first saved.
    "starsessions": [
        "starsessions:get_session_handler", "starsessions:generate_session_id",
    ],
}

PEER = os.environ.get("SESSIONKIT_PEER_SUBSTITUTE", "off")
_evidence: dict[str, Any] = {
    "peer": PEER, "replaced": [], "absent": [], "unmapped": UNMAPPED.get(PEER, []),
    "flask_apps_given_sessionkit": 0,
    "modules_holding_sessionkit": {}, "modules_holding_the_peers_own": {},
}
#: id(the peer's replaced object) -> (its name, the object, kept alive so the id stays its own)
_originals: dict[int, tuple[str, Any]] = {}


def _resolve(name: str) -> tuple[Any, str]:
    module_name, attribute = name.split(":")
    return importlib.import_module(module_name), attribute


def _replace(peer_name: str, ours_name: str) -> None:
    peer_module, attribute = _resolve(peer_name)
    if not hasattr(peer_module, attribute):  # an older release of the peer lacks it
        _evidence["absent"].append(peer_name)
        return
    ours_module, our_attribute = _resolve(ours_name)
    original = getattr(peer_module, attribute)
    _originals[id(original)] = (peer_name, original)
    setattr(peer_module, attribute, getattr(ours_module, our_attribute))
    _evidence["replaced"].append([peer_name, ours_name])


def _every_flask_app_gets_sessionkit() -> None:
    import flask
    from flask.sessions import SecureCookieSessionInterface

    from sessionkit.flask import SessionKit

    original_init = flask.Flask.__init__

    @functools.wraps(original_init)
    def __init__(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if type(self.session_interface) is SecureCookieSessionInterface:
            SessionKit(self)
            _evidence["flask_apps_given_sessionkit"] += 1

    flask.Flask.__init__ = __init__  # type: ignore[method-assign]
    _evidence["replaced"].append(["flask:Flask.session_interface", "sessionkit.flask:SessionKit"])


def _runner_compatibility() -> None:
    """Not part of the substitution: lets a peer's own test code run under this pytest.
    Flask 3.1's conftest uses ``_pytest.monkeypatch.notset``, which pytest 9 renamed."""
    import _pytest.compat
    import _pytest.monkeypatch

    if not hasattr(_pytest.monkeypatch, "notset") and hasattr(_pytest.compat, "NOTSET"):
        _pytest.monkeypatch.notset = _pytest.compat.NOTSET  # type: ignore[attr-defined]


_runner_compatibility()
if PEER != "off":
    if PEER not in REPLACEMENTS:
        raise RuntimeError(f"SESSIONKIT_PEER_SUBSTITUTE={PEER!r}: no such peer in the mapping")
    for _peer_name, _ours_name in REPLACEMENTS[PEER]:
        _replace(_peer_name, _ours_name)
    if PEER == "flask":
        _every_flask_app_gets_sessionkit()


def pytest_report_header() -> str:
    replaced = ", ".join(f"{a} -> {b}" for a, b in _evidence["replaced"]) or "nothing"
    return f"sessionkit substitution ({PEER}): {replaced}"


def pytest_collection_finish(session: Any) -> None:
    """Record which collected test modules hold sessionkit's objects, and any that still hold
    the peer's own (imported before the substitution: the run would prove nothing).

    The peer's own package is not looked at: a checkout holds it beside the tests, and its
    modules keep their references to each other, which no test reaches once the public
    names are replaced."""
    ours = set()
    peer_packages = set()
    for peer_name, our_name in _evidence["replaced"]:
        if our_name.startswith("sessionkit.flask"):  # the Flask hook swaps no module attribute
            continue
        module, attribute = _resolve(our_name)
        ours.add(id(getattr(module, attribute)))
        peer_packages.add(peer_name.split(".")[0].split(":")[0])
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if not path.startswith(str(session.config.rootpath)) or (
                name.split(".")[0] in peer_packages):
            continue
        for attribute, value in list(vars(module).items()):
            if id(value) in ours:
                _evidence["modules_holding_sessionkit"].setdefault(name, []).append(attribute)
            elif id(value) in _originals:
                _evidence["modules_holding_the_peers_own"].setdefault(name, []).append(attribute)


def pytest_sessionfinish(session: Any) -> None:
    target = os.environ.get("SESSIONKIT_PEER_REPORT")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            json.dump(_evidence, out, indent=1, sort_keys=True)
