"""Secrets in store URLs are never shown: not the userinfo password, not ``?password=``,
``?sentinel_password=``, PostgreSQL's ``password=`` parameter or anything else named like a
secret. One rule (``sessionkit.redact``) applies wherever a URL is displayed: the config's
``repr``, store names, ``StoreUnavailable`` and the 503 log line, the CLI's output and errors,
the dashboard's snapshot and the examples' ``/whoami``.

The fuzz target over random URLs is ``tests/security/test_fuzz.py::test_url_redaction``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from sessionkit import SessionConfig, SessionEngine, StoreUnavailable
from sessionkit.cli import main
from sessionkit.redact import redact_text, redact_url, url_secrets
from tests.stores import POSTGRES_ENV, clear_sql
from tests.support import FRAMEWORKS, INSTANCE, KEY, ShopClient, engine_of, make_app, service_url

#: Nothing listens on port 1 of the loopback: every connection is refused at once.
DEAD = "127.0.0.1:1"
#: Store URLs with a secret each, as they appear in real deployments, pointing at nothing.
UNREACHABLE = {
    "redis-userinfo": f"redis://:Userinfo-S3cret@{DEAD}/0?socket_connect_timeout=0.5",
    "redis-query": f"redis://{DEAD}/0?password=Query-S3cret&socket_connect_timeout=0.5",
    "sentinel": f"redis+sentinel://{DEAD}/mymaster?sentinel_password=Sentinel-S3cret"
                "&socket_connect_timeout=0.5",
    "postgresql": f"postgresql+psycopg://postgres@{DEAD}/x?password=Pg-S3cret&connect_timeout=1",
}
SECRETS = ("Userinfo-S3cret", "Query-S3cret", "Sentinel-S3cret", "Pg-S3cret")


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets or SECRETS:
        assert secret not in text, f"{secret!r} shown in {text!r}"


# --- the rule -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:hunter2-pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:hunter2-pw@h:6379/0?key_prefix=app:", "redis://user:***@h:6379/0?key_prefix=app:"),
    ("redis://h:6379/0?password=hunter2-pw&socket_timeout=2",
     "redis://h:6379/0?password=***&socket_timeout=2"),
    ("redis+sentinel://:pw-master@s1:26379,s2:26379/mymaster/0?sentinel_password=pw-sentinel",
     "redis+sentinel://:***@s1:26379,s2:26379/mymaster/0?sentinel_password=***"),
    ("postgresql+psycopg://app@db/sessions?password=hunter2-pw&sslmode=require",
     "postgresql+psycopg://app@db/sessions?password=***&sslmode=require"),
    ("postgresql://app@db/s?sslpassword=hunter2-pw&table=web_sessions",
     "postgresql://app@db/s?sslpassword=***&table=web_sessions"),
    ("mysql+pymysql://u:hunter2-pw@db/s?charset=utf8mb4", "mysql+pymysql://u:***@db/s?charset=utf8mb4"),
    ("redis://h/0?PASSWORD=hunter2-pw", "redis://h/0?PASSWORD=***"),
    ("redis://h/0?pass%77ord=hunter2-pw", "redis://h/0?pass%77ord=***"),  # "password", encoded
    ("redis://h/0?token=hunter2-pw&api_key=k-hunter2&client_secret=s-hunter2",
     "redis://h/0?token=***&api_key=***&client_secret=***"),
    # A password with characters it should have percent-encoded: hidden all the same.
    ("redis://:p@ss/w?rd#x@h:6379/0", "redis://:***@h:6379/0"),
    ("postgresql://u:a/b?c@db/x", "postgresql://u:***@db/x"),
    ("redis://h/0?password=a#b&c", "redis://h/0?password=***#***&***"),
    # Nothing secret: unchanged.
    ("memory://?max_sessions=1000", "memory://?max_sessions=1000"),
    ("jwt://?algorithm=HS256&issuer=https%3A%2F%2Fshop&audience=shop",
     "jwt://?algorithm=HS256&issuer=https%3A%2F%2Fshop&audience=shop"),
    ("sqlite:////var/lib/app/sessions@2024.db", "sqlite:////var/lib/app/sessions@2024.db"),
    ("mysql+pymysql://root@127.0.0.1:3306/sk", "mysql+pymysql://root@127.0.0.1:3306/sk"),
    ("redis://user:@h/0", "redis://user:@h/0"),
])
def test_one_rule_hides_every_secret_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown  # idempotent: a shown URL can be shown again


def test_url_secrets_lists_what_a_driver_would_send() -> None:
    url = "redis+sentinel://u:pw%40one@h/m?sentinel_password=pw-two&socket_timeout=2"
    assert set(url_secrets(url)) >= {"pw%40one", "pw@one", "pw-two"}
    assert "2" not in url_secrets(url) and "u" not in url_secrets(url)


def test_urls_inside_any_text_are_redacted() -> None:
    text = ("cannot connect to 'redis://:pw-one@h/0' nor "
            "postgresql://app@db/x?password=pw-two (see https://example.test/help)")
    shown = redact_text(text)
    assert_hidden(shown, "pw-one", "pw-two")
    assert "https://example.test/help" in shown and "'redis://:***@h/0'" in shown


# --- where URLs are shown -----------------------------------------------------------------------
def test_config_repr_hides_secrets_in_every_url_setting() -> None:
    config = SessionConfig(
        store=UNREACHABLE["redis-query"], secret_key=KEY,
        revocation_store=UNREACHABLE["redis-userinfo"],
        fallback_store=UNREACHABLE["postgresql"], drain_to=UNREACHABLE["sentinel"],
        migrate_from="redis://:Migrate-S3cret@old:6379/0",
    )
    for shown in (repr(config), str(config), repr([config])):
        assert_hidden(shown, *SECRETS, "Migrate-S3cret", KEY)
        assert "socket_connect_timeout=0.5" in shown and "old:6379" in shown


def test_store_unavailable_hides_secrets_in_the_store_and_the_cause() -> None:
    url = UNREACHABLE["postgresql"]
    error = StoreUnavailable(url, OSError(f"could not connect using {url}"))
    assert_hidden(str(error))
    assert_hidden(error.store)
    hidden = StoreUnavailable("sql store", OSError("server said: bad password Pg-S3cret"),
                              hide=url_secrets(url))
    assert_hidden(str(hidden))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", list(UNREACHABLE))
def test_the_503_and_its_log_line_hide_the_secret(
    framework: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = SessionConfig(store=UNREACHABLE[name], secret_key=KEY, instance_id=INSTANCE)
    shop = ShopClient(framework, make_app(framework, config))
    caplog.set_level(logging.DEBUG)
    reply = shop.call("POST", "/cart/apple")
    assert reply.status == 503
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "answering 503" in logged
    assert_hidden(logged)
    assert_hidden(reply.body.decode())
    assert_hidden(engine_of(shop.app).store.name)


#: Every store URL through one command, every command through one URL (they share the
#: error path; a sentinel that does not answer costs redis-py's retries, about 4 s).
CLI_CASES = [("stats", name) for name in UNREACHABLE] + [
    (command, "postgresql") for command in ("export", "import", "inspect", "gc", "migrate")
] + [("gc", "redis-query"), ("migrate", "redis-userinfo")]


@pytest.mark.parametrize(("command", "name"), CLI_CASES)
def test_cli_errors_hide_the_secret(
    command: str, name: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = UNREACHABLE[name]
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO('{"key": "k"}\n'))
    argv = {"migrate": ["migrate", "--from", url, "--to", url],
            "inspect": ["inspect", url, "A" * 64]}.get(command, [command, url])
    status = main(argv)
    out, err = capsys.readouterr()
    assert status != 0
    assert err.strip(), "the failure says something"
    assert_hidden(out + err)


def test_dashboard_snapshot_store_name_and_whoami_hide_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real PostgreSQL, which takes its password as a URL parameter too."""
    base = service_url(POSTGRES_ENV, "PostgreSQL")
    clear_sql(base)
    url = base + ("&" if "?" in base else "?") + "password=" + quote("Pg-S3cret")
    token = "dashboard-token-0123456789"
    monkeypatch.setenv("SHOP_DASHBOARD", "1")
    monkeypatch.setenv("SHOP_DASHBOARD_TOKEN", token)
    for framework in FRAMEWORKS:
        shop = ShopClient(framework, make_app(framework, SessionConfig(
            store=url, secret_key=KEY, instance_id=INSTANCE)))
        assert shop.call("POST", "/cart/apple").status == 200  # the store works
        snapshot = shop.raw("GET", "/_sessionkit/snapshot.json",
                            authorization=f"Bearer {token}")
        assert snapshot.status == 200
        shown = json.loads(snapshot.body)["instances"][0]["store"]
        assert shown.endswith("password=***")
        assert_hidden(snapshot.body.decode())
        assert_hidden(shop.call("GET", "/whoami").body.decode())
        engine: SessionEngine = engine_of(shop.app)
        assert_hidden(engine.store.name + repr(engine.config))
