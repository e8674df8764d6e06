"""Every bad setting fails at startup with a ConfigError that says how to fix it."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from sessionkit import ConfigError, SessionConfig, SessionEngine
from sessionkit.affinity import resolve_instance_id
from sessionkit.redact import redact_url
from tests.support import KEY


def test_defaults() -> None:
    config = SessionConfig()
    assert config.store == "memory://"
    assert config.cookie_name == "session"
    assert config.cookie_secure == "auto"
    assert config.cookie_samesite == "lax"
    assert config.idle_seconds == 14 * 86400
    assert config.absolute_seconds == 30 * 86400


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"store": "nonsense"}, "store must be a URL"),
        ({"store": "nosuch://x"}, "valid schemes: jwt://, mariadb://, memory://"),
        ({"secret_key": "short"}, "at least 32 are required"),
        ({"secret_key": [KEY, "short"]}, "at least 32"),
        ({"secret_key": []}, "empty list"),
        ({"secret_key": 42}, "string or a list"),
        ({"cookie_samesite": "none"}, "needs cookie_secure=True"),
        ({"cookie_samesite": "none", "cookie_secure": "auto"}, "needs cookie_secure=True"),
        ({"cookie_samesite": "sometimes"}, "'lax', 'strict', 'none' or None"),
        ({"cookie_name": "bad name"}, "not a valid cookie name"),
        ({"cookie_name": "a;b"}, "not a valid cookie name"),
        ({"cookie_name": "__Host-s", "cookie_secure": False}, "Secure"),
        ({"cookie_name": "__Secure-s", "cookie_secure": False}, "Secure"),
        ({"cookie_name": "__Host-s", "cookie_path": "/app"}, "__Host- cookie must"),
        ({"cookie_name": "__Host-s", "cookie_domain": "example.com"}, "__Host- cookie must"),
        ({"cookie_path": "app"}, "must start with '/'"),
        ({"cookie_path": "/a;b"}, "without ';'"),
        ({"cookie_domain": "exa mple.com"}, "not a host name"),
        ({"cookie_secure": "maybe"}, "true or false"),
        ({"cookie_httponly": "perhaps"}, "true or false"),
        ({"idle_timeout": 0}, "positive"),
        ({"idle_timeout": -5}, "positive"),
        ({"idle_timeout": float("nan")}, "finite"),
        ({"absolute_timeout": float("inf")}, "finite"),
        ({"idle_timeout": True}, "not a boolean"),
        ({"idle_timeout": "soon"}, "not a duration"),
        ({"absolute_timeout": [1]}, "seconds or a timedelta"),
        ({"instance_id": "Web_1"}, "not a valid instance id"),
        ({"instance_id": "a" * 64}, "not a valid instance id"),
        ({"retry_after": -1}, "0 or more"),
        ({"retry_after": "5"}, "whole seconds"),
        ({"colour": "blue"}, "unknown setting(s) colour"),
        ({"store": "memory://?max_sessions=0"}, "max_sessions"),
        ({"store": "memory://?maxsessions=10"}, "valid options: max_sessions"),
    ],
)
def test_bad_settings_raise_config_error_with_the_fix(kwargs: dict[str, object], fragment: str
                                                      ) -> None:
    with pytest.raises(ConfigError) as info:
        SessionEngine(secret_key=kwargs.pop("secret_key", KEY), **kwargs)
    assert fragment in str(info.value)


def test_durations_accept_numbers_timedeltas_and_units() -> None:
    config = SessionConfig(idle_timeout="30m", absolute_timeout=timedelta(hours=12))
    assert config.idle_seconds == 1800
    assert config.absolute_seconds == 43200
    assert SessionConfig(idle_timeout="1.5h").idle_seconds == 5400
    assert SessionConfig(idle_timeout=90).idle_seconds == 90
    assert SessionConfig(idle_timeout="2w").idle_seconds == 14 * 86400


def test_from_env_reads_prefixed_variables_and_kwargs_win() -> None:
    env = {
        "SESSIONKIT_STORE": "memory://?max_sessions=5",
        "SESSIONKIT_SECRET_KEY": f"{KEY}, {KEY}-older-one",
        "SESSIONKIT_COOKIE_SECURE": "true",
        "SESSIONKIT_COOKIE_HTTPONLY": "no",
        "SESSIONKIT_IDLE_TIMEOUT": "10m",
        "SESSIONKIT_RETRY_AFTER": "7",
        "SESSIONKIT_COOKIE_DOMAIN": "",
        "SESSIONKIT_TEST_SOMETHING": "ignored",
        "OTHER": "ignored",
    }
    config = SessionConfig.from_env(env, cookie_name="sid")
    assert config.store == "memory://?max_sessions=5"
    assert config.secret_keys == (KEY.encode(), f"{KEY}-older-one".encode())
    assert config.cookie_secure is True
    assert config.cookie_httponly is False
    assert config.idle_seconds == 600
    assert config.retry_after == 7
    assert config.cookie_domain is None
    assert config.cookie_name == "sid"


def test_from_env_names_the_bad_variable() -> None:
    with pytest.raises(ConfigError, match="retry_after"):
        SessionConfig.from_env({"SESSIONKIT_RETRY_AFTER": "soon"})


def test_from_mapping_strict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown setting SESSIONKIT_STOR"):
        SessionConfig.from_mapping({"SESSIONKIT_STOR": "memory://"}, strict=True)


def test_from_url_and_coerce() -> None:
    assert SessionConfig.from_url("memory://", secret_key=KEY).store == "memory://"
    base = SessionConfig(secret_key=KEY)
    assert SessionConfig.coerce(base, {"cookie_name": "x"}).cookie_name == "x"
    assert SessionConfig.coerce("memory://?max_sessions=3", {}).store.endswith("=3")
    assert SessionConfig.coerce(base, {}) is base


def test_secret_never_appears_in_repr() -> None:
    assert KEY not in repr(SessionConfig(secret_key=KEY))


def test_missing_secret_key_generates_a_process_key_loudly_for_memory_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sessionkit"):
        SessionEngine(store="memory://")
    assert "no secret_key configured" in caplog.text


def test_instance_id_resolution_order() -> None:
    assert resolve_instance_id("web-1", {"SESSIONKIT_INSTANCE_ID": "x"}) == "web-1"
    assert resolve_instance_id(None, {"SESSIONKIT_INSTANCE_ID": "from-env",
                                      "POD_NAME": "pod"}) == "from-env"
    assert resolve_instance_id(None, {"POD_NAME": "shop-7d9f-abc", "HOSTNAME": "h"}) == \
        "shop-7d9f-abc"
    assert resolve_instance_id(None, {"HOSTNAME": "Web_01.Example.COM"}) == "web-01-example-com"
    with pytest.raises(ConfigError, match="SESSIONKIT_INSTANCE_ID"):
        resolve_instance_id(None, {"SESSIONKIT_INSTANCE_ID": "Bad.Id"})


def test_redact_url_hides_passwords() -> None:
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("postgresql://u:pw@db/x") == "postgresql://u:***@db/x"
    assert redact_url("memory://") == "memory://"


def test_instance_id_is_opaque_only_where_nothing_routes_on_it() -> None:
    from sessionkit.affinity import instance_id_for

    env = {"POD_NAME": "shop-7d9f-abc"}
    keys = [KEY.encode()]
    assert instance_id_for(None, routes=True, secret_keys=keys, environ=env) == "shop-7d9f-abc"
    opaque = instance_id_for(None, routes=False, secret_keys=keys, environ=env)
    assert opaque.startswith("i-") and len(opaque) == 14 and "shop" not in opaque
    assert opaque == instance_id_for(None, routes=False, secret_keys=keys, environ=env)
    assert opaque != instance_id_for(None, routes=False, secret_keys=[b"k" * 32], environ=env)
    assert instance_id_for("web-1", routes=False, secret_keys=keys, environ=env) == "web-1"
    assert instance_id_for(None, routes=False, secret_keys=keys,
                           environ={**env, "SESSIONKIT_INSTANCE_ID": "web-2"}) == "web-2"


def test_the_typed_options_are_exactly_the_settings() -> None:
    import dataclasses
    from typing import get_type_hints

    from sessionkit.config import SessionOptions

    assert set(get_type_hints(SessionOptions)) == {
        f.name for f in dataclasses.fields(SessionConfig)}


@pytest.mark.slow
def test_mypy_catches_a_misspelt_or_mistyped_option(tmp_path: Path) -> None:
    from mypy import api

    program = tmp_path / "app.py"
    program.write_text(
        "from typing import Any\n"
        "from sessionkit.asgi import SessionMiddleware\n"
        "from sessionkit.flask import SessionKit\n"
        "from sessionkit.wsgi import SessionMiddleware as WsgiMiddleware\n"
        "async def app(scope: Any, receive: Any, send: Any) -> None: ...\n"
        "SessionMiddleware(app, secret_key='k', idle_timout='1h')\n"
        "SessionKit(None, cookie_httponly='yes please')\n"
        "WsgiMiddleware(lambda e, s: [], retry_after='soon')\n"
        "SessionMiddleware(app, max_age=3600, same_site='lax')\n")
    out, _, status = api.run([str(program), "--no-incremental", "--ignore-missing-imports"])
    assert status == 1
    assert 'app.py:6: error: Unexpected keyword argument "idle_timout"' in out
    assert 'app.py:7: error: Argument "cookie_httponly" to "SessionKit" has incompatible' in out
    assert 'app.py:8: error: Argument "retry_after" to "SessionMiddleware" has incompatible' in out
    assert "Found 3 errors" in out  # Starlette's own arguments (line 9) type-check
