"""The sessionkit command on real stores: 10,000 sessions between Redis, PostgreSQL, MariaDB
and SQLite with every key and lifetime kept, export/import, stats, inspect, and errors."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessionkit import SessionEngine
from sessionkit.cli import main
from sessionkit.stores import open_store
from sessionkit.stores.base import Record, Store
from tests.stores import store_url_for
from tests.support import KEY

COUNT = 10_000
PAIRS = [("redis", "postgresql"), ("postgresql", "mariadb"), ("sqlite", "redis")]


def fill(store: Store, now: float) -> dict[str, Record]:
    """COUNT sessions with varied lifetimes, users and data, plus 50 already expired."""
    made: dict[str, Record] = {}
    for n in range(COUNT):
        key = secrets.token_urlsafe(16)
        made[key] = Record({"cart": f'["item-{n}"]', "n": str(n)}, now - 100, now + 600 + n,
                           now - 10, f"user-{n % 97}" if n % 3 else None, 1, f"web-{n % 3}",
                           {"au": now - 50, "xi": 900.0, "dn": f"device {n} ☃"} if n % 5 == 0
                           else {})
    expired = {secrets.token_urlsafe(16): Record({"x": "1"}, now - 900, now - 5, now - 900)
               for _ in range(50)}
    items = list({**made, **expired}.items())
    for start in range(0, len(items), 1000):
        store.put_records(items[start:start + 1000], 86400)
    return made


def url_for(request: pytest.FixtureRequest, tmp_path: Path, name: str, tag: str) -> str:
    if name == "sqlite":
        return f"sqlite:///{tmp_path / f'{tag}.db'}"
    return store_url_for(request, tmp_path, name)


@pytest.mark.parametrize(("source_name", "target_name"), PAIRS,
                         ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_migrate_ten_thousand_sessions_keeping_keys_and_lifetimes(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    source_name: str, target_name: str,
) -> None:
    source_url = url_for(request, tmp_path, source_name, "source")
    target_url = url_for(request, tmp_path, target_name, "target")
    source = open_store(source_url)
    made = fill(source, time.time())
    engine = SessionEngine(store=source_url, secret_key=KEY)
    session = engine.load(None)
    session["cart"] = ["real"]
    [cookie] = engine.commit(session).set_cookies

    assert main(["migrate", "--from", source_url, "--to", target_url]) == 0
    output = capsys.readouterr().out
    assert f"copied {COUNT + 1}, already there 0, skipped (expired) 50, failed 0" in output

    target = open_store(target_url)
    copied = {key: record for batch in target.iter_records(2000) for key, record in batch}
    assert len(copied) == COUNT + 1
    for key, original in made.items():
        record = copied[key]
        assert record.fields == original.fields
        assert abs(record.expires_at - original.expires_at) <= 2
        assert abs(record.created_at - original.created_at) <= 2
        assert (record.user_id, record.instance) == (original.user_id, original.instance)
        assert record.meta == original.meta
    moved = SessionEngine(store=target_url, secret_key=KEY)
    assert moved.load(cookie.split(";")[0])["cart"] == ["real"]  # the same cookie works there

    assert main(["migrate", "--from", source_url, "--to", target_url]) == 0  # run it again
    assert f"copied 0, already there {COUNT + 1}" in capsys.readouterr().out
    source.close()
    target.close()


def test_export_then_import_keeps_everything(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source_url = f"sqlite:///{tmp_path / 'a.db'}"
    target_url = store_url_for(request, tmp_path, "redis")
    made = fill(open_store(source_url), time.time())
    assert main(["export", source_url]) == 0
    dump = capsys.readouterr()
    assert f"exported {COUNT} sessions" in dump.err
    assert len(dump.out.splitlines()) == COUNT
    monkeypatch.setattr(sys, "stdin", io.StringIO(dump.out + "not json\n{}\n"))
    assert main(["import", target_url]) == 1  # two bad lines: reported, the rest imported
    result = capsys.readouterr()
    assert f"copied {COUNT}, already there 0, skipped (expired) 0, failed 2" in result.out
    assert "line 10001" in result.err
    copied = {k: r for batch in open_store(target_url).iter_records() for k, r in batch}
    key = next(iter(made))
    assert copied[key].fields == made[key].fields
    assert abs(copied[key].expires_at - made[key].expires_at) <= 2
    assert all(copied[k].meta == made[k].meta for k in made)  # remember-me, login times


def test_inspect_takes_a_cookie_that_starts_with_a_dash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One id in 64 starts with "-": it is the session to inspect, not an unknown option."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = SessionEngine(store=url, secret_key=KEY, instance_id="web-7")
    for _ in range(2000):  # (63/64)**2000: never without one
        session = engine.load(None)
        session["cart"] = ["pear"]
        [cookie] = engine.commit(session).set_cookies
        value = cookie.split(";")[0].split("=", 1)[1]
        if value.startswith("-"):
            break
    assert value.startswith("-")
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)
    capsys.readouterr()
    assert main(["inspect", url, value, "--show-values"]) == 0
    assert 'cart = ["pear"]' in capsys.readouterr().out


def test_stats_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = SessionEngine(store=url, secret_key=KEY, instance_id="web-7")
    session = engine.load(None)
    session["cart"] = ["secret-thing"]
    session.user_id = "ann"
    [cookie] = engine.commit(session).set_cookies
    value = cookie.split(";")[0].split("=", 1)[1]
    assert main(["stats", url]) == 0
    out = capsys.readouterr().out
    assert "1 live sessions" in out
    assert "instance web-7: 1" in out
    assert "expiring >=7d: 1" in out

    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)
    assert main(["inspect", url, value]) == 0
    out = capsys.readouterr().out
    assert "user      ann" in out
    assert "cart = <list, 16 bytes>" in out
    assert "secret-thing" not in out
    assert value.split(".")[0] not in out  # never the id
    assert main(["inspect", url, value, "--show-values"]) == 0
    assert '["secret-thing"]' in capsys.readouterr().out
    assert main(["inspect", url, "A" * 64]) == 2
    assert "not a session id" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "status", "fragment"), [
    (["stats", "nope://x"], 2, "unknown store scheme"),
    (["stats", "memory://"], 2, "lives inside the app's process"),
    (["stats", "redis://:pw-secret@127.0.0.1:1/0?socket_connect_timeout=0.5"], 1,
     "unavailable"),
    (["migrate", "--from", "sqlite:///x.db"], 2, "--to"),
    (["export", "postgresql+psycopg://u:pw-secret@127.0.0.1:1/x?connect_timeout=1"], 1,
     "unavailable"),
    (["inspect", "sqlite:///x.db", "abc"], 2, "secret key"),
])
def test_errors_are_one_line_with_a_status(
    argv: list[str], status: int, fragment: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SESSIONKIT_SECRET_KEY", raising=False)
    assert main(argv) == status
    err = capsys.readouterr().err
    assert fragment in err
    assert "pw-secret" not in err
    assert "Traceback" not in err


def test_console_script_help_for_every_command() -> None:
    for command in ("export", "import", "migrate", "stats", "inspect", "gc", "lb-config"):
        done = subprocess.run([sys.executable, "-m", "sessionkit.cli", command, "--help"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "usage: sessionkit" in done.stdout
