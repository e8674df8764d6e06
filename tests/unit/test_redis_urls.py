"""Redis store URLs: the options every form takes, each refused clearly at startup when wrong
(never a TypeError at the first request), and no secret in the store's name."""

from __future__ import annotations

import pytest

from sessionkit import ConfigError
from sessionkit.stores import open_store

FORMS = ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0", "unix:///tmp/redis.sock",
         "redis+sentinel://127.0.0.1:26379/mymaster/0", "redis+cluster://127.0.0.1:7000"]
SHARED = ("socket_timeout=1.5&socket_connect_timeout=0.5&socket_read_size=65536"
          "&health_check_interval=10&max_connections=20&client_name=shop&protocol=2"
          "&key_prefix=shop%3A&deadline=2.5")


@pytest.mark.parametrize("url", FORMS)
def test_every_form_takes_the_connection_options(url: str) -> None:
    store = open_store(f"{url}?{SHARED}")
    assert store.prefix == "shop:"  # type: ignore[attr-defined]
    assert store.deadline == 2.5  # type: ignore[attr-defined]


def test_the_options_reach_the_connections() -> None:
    store = open_store(f"redis://127.0.0.1:6379/3?{SHARED}")
    client = store._sync()  # type: ignore[attr-defined]  # made, not connected
    options = client.connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (1.5, 0.5)
    assert (options["client_name"], options["health_check_interval"], options["db"]) == (
        "shop", 10, 3)
    assert client.connection_pool.max_connections == 20
    store.close()


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0?colour=blue",
    "redis+cluster://127.0.0.1:7000?colour=blue",
    "redis+sentinel://127.0.0.1:26379/mymaster?colour=blue",
    "redis://127.0.0.1:6379/0?decode_responses=true",  # sessionkit reads bytes
])
def test_an_unknown_option_is_refused_with_the_valid_ones_listed(url: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown option .*valid options: .*deadline.*"
                                          r"socket_timeout"):
        open_store(url)


@pytest.mark.parametrize(("url", "message"), [
    ("redis://127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout='soon' is invalid"),
    ("redis://127.0.0.1:6379/0?deadline=0", "deadline='0' is invalid: must be more than 0"),
    ("redis://127.0.0.1:6379/0?ssl_certfile=/c.pem", "use rediss://"),
    ("redis+cluster://127.0.0.1:7000?ssl_ca_certs=/ca.pem", "ssl=true"),
    ("redis+cluster://127.0.0.1:7000/2", "a Cluster has no databases"),
    ("redis+cluster://127.0.0.1:7000?require_full_coverage=maybe", "must be true or false"),
    ("redis+sentinel://127.0.0.1:26379", "needs the master's service name"),
    ("redis+sentinel://127.0.0.1:26379/mymaster/zero", "must be a number"),
    ("redis+sentinel://127.0.0.1:x/mymaster", "is not host:port"),
    ("unix:///tmp/redis.sock?socket_keepalive=true", "does not apply"),
])
def test_a_bad_option_is_refused_with_the_fix(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_form_specific_options() -> None:
    open_store("redis+cluster://127.0.0.1:7000?require_full_coverage=false&reinitialize_steps=3"
               "&dynamic_startup_nodes=false&ssl=true&ssl_ca_certs=/ca.pem")
    open_store("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/2?ssl=true"
               "&sentinel_username=watch&sentinel_password=s3cret")
    with pytest.raises(ConfigError, match="unknown option 'db'"):
        open_store("redis+cluster://127.0.0.1:7000?db=1")


def test_no_password_in_the_store_name() -> None:
    store = open_store("redis+sentinel://:hunter2@127.0.0.1:26379/mymaster/0"
                       "?sentinel_password=s3cret-too")
    assert "hunter2" not in store.name and "s3cret-too" not in store.name
