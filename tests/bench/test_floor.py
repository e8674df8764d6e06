"""The floor apps (bench/floor.py) are real, if bare, sessions: a floor that kept nothing
would make every layer look dearer than it is."""

from __future__ import annotations

import pytest

from bench import apps
from bench.workload import InProcess, plan

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("name", ["flask/floor", "fastapi/floor"])
def test_each_client_keeps_its_own_cart_across_requests(name: str) -> None:
    driver = InProcess(apps.build(name, {}), name.startswith("fastapi"), 3)
    try:
        driver.seed()
        assert len({jar.cookies["session"] for jar in driver.jars}) == 3
        result = driver.run(plan(30, 3))  # requests 9, 19 and 29 write (clients 0, 1, 2)
        assert result.errors == 0
        carts = [_cart(driver, client) for client in range(3)]
    finally:
        driver.close()
    assert [cart[-1] for cart in carts] == ["item-9-" + "x" * 20, "item-19-" + "x" * 20,
                                            "item-29-" + "x" * 20]
    assert all(len(cart) == apps.CART_SIZE for cart in carts)


def _cart(driver: InProcess, client: int) -> list[str]:
    from bench import floor

    sid = driver.jars[client].cookies["session"]
    return list(floor.SESSIONS[sid]["cart"])
