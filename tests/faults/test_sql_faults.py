"""PostgreSQL connections killed under load (``pg_terminate_backend``, only this test database's
backends): the pool recovers by itself, no request ever gets a 500, a request caught on a dead
connection gets a 503 with ``Retry-After`` and succeeds when retried, and nothing acknowledged
is lost."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from tests.apps import make
from tests.load import Load
from tests.servers import serve_asgi, serve_wsgi
from tests.stores import POSTGRES_ENV, clear_sql
from tests.support import KEY, ShopClient, service_url

CLIENTS = 50
KILLS = 5
RETRIES = 3


def terminate_backends(admin: sa.Engine) -> int:
    """Kill every other connection to this database (and no other database's)."""
    with admin.connect() as connection:
        killed = connection.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).scalar_one()
        connection.commit()
    return int(killed)


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_killed_connections_under_load(kind: str) -> None:
    url = service_url(POSTGRES_ENV, "PostgreSQL")
    clear_sql(url)
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    app = make(kind, secret_key=KEY, store=url, retry_after=1)
    serve = serve_asgi if kind == "fastapi" else serve_wsgi
    killed = 0
    with serve(app) as base:
        load = Load(base, CLIENTS, retries_after_503=RETRIES)
        load.open_sessions()
        load.start()
        try:
            for _ in range(KILLS):
                time.sleep(0.4)
                killed += terminate_backends(admin)
            time.sleep(0.4)
        finally:
            load.finish()
        lost = load.lost_keys()
        statuses = load.statuses
        load.close()
    admin.dispose()
    print(f"postgresql/{kind}: {killed} connections killed, answers {dict(statuses)}")
    assert killed > 0  # the fault hit open connections
    assert load.problems == []  # no 500, every 503 with Retry-After and no Set-Cookie
    assert set(statuses) <= {200, 503} and statuses[200] > CLIENTS
    assert lost == {}


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_a_connection_killed_in_the_middle_of_a_write_is_retried_on_a_fresh_one(
    kind: str,
) -> None:
    """Deterministic: the write waits on a row lock held here, its backend is killed while it
    waits, then the lock is released. The store runs the write again on a new connection."""
    url = service_url(POSTGRES_ENV, "PostgreSQL")
    clear_sql(url)
    shop = ShopClient(kind, make(kind, secret_key=KEY, store=url))
    assert shop.call("POST", "/set/a").status == 200
    cookie = f"session={shop.cookie}"
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    replies: list[Any] = []
    with admin.connect() as locker, admin.connect() as killer:
        locker.execute(sa.text("SELECT id FROM sessionkit_sessions FOR UPDATE"))
        writer = threading.Thread(
            target=lambda: replies.append(shop.raw("POST", "/set/b", cookie=cookie)))
        writer.start()
        waiting = _backend_waiting_for_a_lock(killer)
        killer.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
        killer.commit()
        time.sleep(0.3)
        locker.rollback()  # the lock is released: the retried write can go through
        writer.join(timeout=30)
    admin.dispose()
    [reply] = replies
    assert reply.status == 200, reply.body
    assert shop.raw("GET", "/get", cookie=cookie).json == {"a": True, "b": True}


def _backend_waiting_for_a_lock(connection: sa.Connection) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid = connection.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )).scalar()
        connection.commit()
        if pid is not None:
            return int(pid)
        time.sleep(0.05)
    raise AssertionError("the write never waited on the lock")
