"""A store written outside sessionkit (examples/custom_store.py) proves itself with the
conformance kit, and serves the example shop under both frameworks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.custom_store import SQLiteFileStore
from sessionkit import SessionConfig
from sessionkit.testing import StoreContract
from tests.support import FRAMEWORKS, KEY, ShopClient, make_app


class TestExampleStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteFileStore]:
        store = SQLiteFileStore(str(tmp_path / "sessions.db"))
        yield store
        store.close()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_example_store_serves_the_shop(framework: str, tmp_path: Path) -> None:
    store = SQLiteFileStore(str(tmp_path / "shop.db"))
    config = SessionConfig(store=store, secret_key=KEY, instance_id="inst-a")
    shop = ShopClient(framework, make_app(framework, config))
    shop.call("POST", "/login", {"user": "alice"})
    shop.call("POST", "/cart/apple")
    assert shop.call("GET", "/cart").json == {"cart": ["apple"]}
    other = ShopClient(framework, make_app(framework, config))  # another instance, same file
    assert other.raw("GET", "/cart", cookie=f"session={shop.cookie}").json == {"cart": ["apple"]}
    old = shop.cookie
    assert shop.call("POST", "/logout").json == {"logged_out": "alice"}
    assert other.raw("GET", "/whoami", cookie=f"session={old}").json["user"] is None


def test_a_published_store_is_found_by_its_scheme(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that publishes a store (entry point group ``sessionkit.stores``) gives it a
    URL scheme: every store setting accepts it, and the list of valid schemes shows it."""
    import sys

    from sessionkit.stores import open_store, store_schemes

    dist = tmp_path / "site" / "example_stores-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: example-stores\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sessionkit.stores]\nexamplesqlite = examples.custom_store:SQLiteFileStore\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), *sys.path])
    assert "examplesqlite" in store_schemes()
    url = f"examplesqlite://{tmp_path / 'published.db'}"
    store = open_store(url)
    assert isinstance(store, SQLiteFileStore)
    shop = ShopClient("fastapi", make_app("fastapi", SessionConfig(store=url, secret_key=KEY)))
    shop.call("POST", "/cart/pear")
    assert shop.call("GET", "/cart").json == {"cart": ["pear"]}
