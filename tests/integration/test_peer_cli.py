"""``sessionkit migrate --from <peer store>`` (and ``export`` | ``import``): peer sessions
copied in bulk are found later by their old cookies."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from sessionkit import cli
from tests.peer_apps import (
    USERS,
    cachelib_file,
    file_app,
    fill_on_starsessions,
    flask_cookie,
    flask_shop,
    log_in_and_fill_carts,
    old_redis_app,
    peer_redis_url,
    redis_client,
    sessionkit_fastapi,
    sessionkit_flask,
    sessionkit_sessions,
    set_cookie,
    shop,
)
from tests.stores import REDIS_ENV, flush_redis
from tests.support import KEY, ShopClient, service_url


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


class Peer:
    """One peer's store, filled by the real library: its URL, the users' cookies, whether a
    session is still there, and the shop restarted on sessionkit."""

    def __init__(self, kind: str, redis_url: str, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "flask-session-redis":
            self.url = peer_redis_url(redis_url)
            self.cookies = log_in_and_fill_carts(old_redis_app(redis_url).test_client,
                                                 flask_cookie)
            self._there: Callable[[str], bool] = lambda sid: self._redis("session:" + sid)
        elif kind == "flask-session-file":
            directory = tmp_path / "flask_session"
            self.url = f"flask-session+file://{directory}"
            self.cookies = log_in_and_fill_carts(file_app(directory, "cachelib").test_client,
                                                 flask_cookie)
            self._there = lambda sid: cachelib_file(directory, sid).exists()
        else:
            self.url = f"starsessions+{redis_url}?prefix=star."
            self.cookies = fill_on_starsessions(redis_url, "star.")
            self._there = lambda sid: self._redis("star." + sid)
        self._redis_url = redis_url

    def _redis(self, key: str) -> bool:
        with redis_client(self._redis_url) as client:
            return bool(client.exists(key))

    def holds(self, user: str) -> bool:
        return self._there(self.cookies[user])

    def new_shop(self, store: str) -> ShopClient:
        if self.kind == "starsessions":
            return shop("fastapi", sessionkit_fastapi(store=store, migrate_from=self.url))
        return shop("flask", flask_shop(sessionkit_flask(store=store, migrate_from=self.url)))


@pytest.fixture(params=["flask-session-redis", "flask-session-file", "starsessions"])
def peer(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Peer:
    return Peer(request.param, redis_url, tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
        ) -> tuple[int, str, str]:
    if stdin is not None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stdin", io.StringIO(stdin))
            status = cli.main(list(argv))
    else:
        status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_found_by_old_cookies(peer: Peer, target: str) -> None:
    new = peer.new_shop(target)
    for user, old in peer.cookies.items():
        assert peer.holds(user)  # a copy leaves the source as it was
        reply = new.raw("GET", "/whoami", cookie=f"session={old}")
        assert reply.json == {"user": user, "cart": USERS[user]}
        set_cookie(reply)
        assert not peer.holds(user)  # claimed: now deleted there
    assert sessionkit_sessions(target) == len(USERS)  # the copies, no new sessions


def test_migrate_copies_peer_sessions_found_later_by_their_cookies(
        peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)  # never an argument: ps shows those
    target = f"sqlite:///{tmp_path / 'sessions.db'}"
    status, out, _ = run(capsys, "migrate", "--from", peer.url, "--to", target, "--dry-run")
    assert (status, sessionkit_sessions(target)) == (0, 0)
    assert "would copy" in out and "copied 3," in out
    status, out, _ = run(capsys, "migrate", "--from", peer.url, "--to", target)
    assert status == 0
    assert "copied 3, already there 0" in out
    status, out, _ = run(capsys, "migrate", "--from", peer.url, "--to", target)
    assert "copied 0, already there 3" in out  # a second run copies only what is missing
    assert_found_by_old_cookies(peer, target)


def test_export_and_import(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    peer = Peer("flask-session-redis", redis_url, tmp_path)
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)
    status, dump, err = run(capsys, "export", peer.url)
    assert status == 0 and "exported 3 sessions" in err
    assert "apple" in dump and "session:" not in dump  # data, under sessionkit keys
    target = f"sqlite:///{tmp_path / 'sessions.db'}"
    status, out, _ = run(capsys, "import", target, stdin=dump)
    assert status == 0 and "copied 3" in out
    assert_found_by_old_cookies(peer, target)


def test_stats_of_a_peer_store(redis_url: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    peer = Peer("starsessions", redis_url, tmp_path)
    status, out, _ = run(capsys, "stats", peer.url)
    assert status == 0 and "3 live sessions" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["migrate", "--from", "flask-session+redis://127.0.0.1/0", "--to", "sqlite://"],
     "needs the app's secret key"),
    (["migrate", "--from", "sqlite://", "--to", "flask-session+redis://127.0.0.1/0"],
     "only reads flask-session sessions"),
    (["import", "starsessions+redis://127.0.0.1/0"], "only reads starsessions sessions"),
    (["migrate", "--from", "flask-session+redis://127.0.0.1/0", "--to", "sqlite://",
      "--secret-key", KEY], "not taken as an argument"),
])
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONKIT_SECRET_KEY", raising=False)
    status, _, err = run(capsys, *argv, stdin="")
    assert status == 2
    assert message in err




def test_an_unknown_option_of_a_peer_url_is_named(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", KEY)
    status, _, err = run(capsys, "migrate", "--from", "flask-session+redis://127.0.0.1/0?nope=1",
                         "--to", "sqlite://", stdin="")
    assert status == 2
    assert "unknown option 'nope'" in err
