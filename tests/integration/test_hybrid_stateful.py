"""Random interleavings of reads, writes, logins (regenerate), log-outs, log-outs everywhere
and instance deaths over three hybrid-mode instances and one real store, checked against a
model: a dict per browser. Every request is routed by the test — home (the instance the
cookie names, where the near cache can hit) or anywhere (a misroute) — and every read must
show exactly what the model says: no stale copy, no lost write.

Log-out-everywhere is modelled with its documented bound: the test lets ``MAX_AGE`` pass
right after it, then expects every session of that user gone on every instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.hybrid_support import MAX_AGE, Browser, Instances
from tests.stores import POSTGRES_ENV, REDIS_ENV, clear_sql, flush_redis
from tests.support import FakeClock, service_url

INSTANCES = ("a", "b", "c")
BROWSERS = 3
ITEMS = st.sampled_from(["apple", "pear", "fig", "kiwi"])
USERS = st.sampled_from(["ada", "bob"])
instances_ = st.sampled_from(INSTANCES)
browsers_ = st.integers(0, BROWSERS - 1)


@dataclass
class Expected:
    cart: list[str] = field(default_factory=list)
    user: str | None = None


class HybridMachine(RuleBasedStateMachine):
    store = ""
    reset: staticmethod = staticmethod(lambda url: None)

    def __init__(self) -> None:
        super().__init__()
        self.reset(self.store)
        self.clock = FakeClock()
        self.cluster = Instances(self.store, self.clock, "flask", count=len(INSTANCES))
        self.browsers = [Browser() for _ in range(BROWSERS)]
        self.model = [Expected() for _ in range(BROWSERS)]
        self.requests = 0

    def teardown(self) -> None:
        self.cluster.close()

    def _where(self, browser: int, instance: str, home: bool) -> str:
        route = self.browsers[browser].route
        return route if home and route in INSTANCES else instance

    @rule(browser=browsers_, instance=instances_, home=st.booleans())
    def read(self, browser: int, instance: str, home: bool) -> None:
        shop = self.cluster[self._where(browser, instance, home)]
        client, expected = self.browsers[browser], self.model[browser]
        assert client.cart(shop) == expected.cart
        assert client.send(shop, "GET", "/whoami").json["user"] == expected.user
        self.requests += 2

    @rule(browser=browsers_, instance=instances_, home=st.booleans(), item=ITEMS)
    def add(self, browser: int, instance: str, home: bool, item: str) -> None:
        shop = self.cluster[self._where(browser, instance, home)]
        reply = self.browsers[browser].send(shop, "POST", f"/cart/{item}")
        assert reply.status == 200
        self.model[browser].cart.append(item)
        assert reply.json["cart"] == self.model[browser].cart
        self.requests += 1

    @rule(browser=browsers_, instance=instances_, home=st.booleans())
    def remove(self, browser: int, instance: str, home: bool) -> None:
        cart = self.model[browser].cart
        if not cart:
            return
        shop = self.cluster[self._where(browser, instance, home)]
        reply = self.browsers[browser].send(shop, "DELETE", f"/cart/{cart[0]}")
        assert reply.status == 200
        cart.pop(0)
        self.requests += 1

    @rule(browser=browsers_, instance=instances_, home=st.booleans(), user=USERS)
    def login(self, browser: int, instance: str, home: bool, user: str) -> None:
        """``regenerate()`` then bind the user: a new id, the same cart."""
        shop = self.cluster[self._where(browser, instance, home)]
        assert self.browsers[browser].send(shop, "POST", "/login", {"user": user}).status == 200
        self.model[browser].user = user
        self.requests += 1

    @rule(browser=browsers_, instance=instances_, home=st.booleans())
    def logout(self, browser: int, instance: str, home: bool) -> None:
        shop = self.cluster[self._where(browser, instance, home)]
        self.browsers[browser].send(shop, "POST", "/logout")
        self.model[browser] = Expected()
        self.requests += 1

    @rule(browser=browsers_, instance=instances_, home=st.booleans())
    def logout_everywhere(self, browser: int, instance: str, home: bool) -> None:
        user = self.model[browser].user
        shop = self.cluster[self._where(browser, instance, home)]
        self.browsers[browser].send(shop, "POST", "/logout?everywhere=1")
        self.requests += 1
        for index, expected in enumerate(self.model):
            if index == browser or (user is not None and expected.user == user):
                self.model[index] = Expected()
        self.clock.advance(MAX_AGE)  # the documented bound without store invalidations

    @rule(instance=instances_)
    def kill(self, instance: str) -> None:
        self.cluster.kill(instance)

    @rule(seconds=st.sampled_from([0.5, 5.0, 29.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def caches_stay_bounded(self) -> None:
        for name in INSTANCES:
            from tests.hybrid_support import engine

            backend = engine(self.cluster[name]).backend
            assert len(backend.cache) <= backend.cache.size  # type: ignore[attr-defined]


def _run(url: str, reset: object, examples: int) -> None:
    HybridMachine.store = url
    HybridMachine.reset = staticmethod(reset)  # type: ignore[assignment]
    run_state_machine_as_test(HybridMachine, settings=settings(
        max_examples=examples, stateful_step_count=30, deadline=None,
        suppress_health_check=list(HealthCheck),
    ))


@pytest.mark.parametrize("store", ["redis", "postgresql"])
def test_random_interleavings_match_the_model(store: str) -> None:
    if store == "redis":
        _run(service_url(REDIS_ENV, "Redis"), flush_redis, 50)
    else:
        _run(service_url(POSTGRES_ENV, "PostgreSQL"), clear_sql, 25)
