"""PostgreSQL connections killed under load (``pg_terminate_backend``, only this test database's
backends): the pool recovers by itself, no request ever gets a 500, a request caught on a dead
connection gets a 503 with ``Retry-After`` and succeeds when retried, and nothing acknowledged
is lost."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tests.apps import make
from tests.load import Load
from tests.servers import serve_asgi, serve_wsgi
from tests.stores import POSTGRES_ENV, clear_sql
from tests.support import KEY, service_url

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
