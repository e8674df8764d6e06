"""The shop's HTML page, served at ``/`` by both examples: one self-contained document that
drives the unchanged JSON routes (the browser tests click through it), and whose first HTML
already shows the session's user, cart and serving instance."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from examples import shop_page
from sessionkit import SessionConfig
from tests.support import FRAMEWORKS, KEY, ShopClient, make_app


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_page_is_served_self_contained_and_sets_no_cookie(framework: str) -> None:
    client = ShopClient(framework, make_app(framework, SessionConfig(secret_key=KEY)))
    reply = client.call("GET", "/")
    assert reply.status == 200
    assert (reply.header("content-type") or "").startswith("text/html")
    assert reply.set_cookies == []  # the page itself needs no session
    page = reply.body.decode()
    for control in ('id="login-form"', 'data-add="apple"', 'id="cart"', 'id="instance"',
                    'id="logout"', 'id="lost"'):
        assert control in page
    for route in ('"whoami"', '"cart"', '"login"', '"logout"', '"cart/"'):
        assert route in page  # relative: the page works under any prefix a proxy adds
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "loads nothing else"
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_page_and_json_routes_side_by_side(framework: str) -> None:
    client = ShopClient(framework, make_app(framework, SessionConfig(secret_key=KEY)))
    assert client.call("POST", "/cart/apple").json == {"cart": ["apple"]}
    assert client.call("GET", "/").status == 200
    assert client.call("GET", "/cart").json == {"cart": ["apple"]}


class PageText(HTMLParser):
    """The text of each element with an id (nested ones included), which elements are hidden,
    the cart's lines and the JSON the page hands to its script."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.hidden: set[str] = set()
        self.cart: list[str] = []
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        element_id = found.get("id")
        if element_id is not None:
            self.text.setdefault(element_id, "")
            if "hidden" in found:
                self.hidden.add(element_id)
        if tag == "button" and found.get("data-remove") is not None:
            self.cart.append(found["data-remove"] or "")
        self._open.append(element_id)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id is not None:
                self.text[element_id] += data


def first_html(client: ShopClient) -> PageText:
    reply = client.call("GET", "/")
    assert reply.status == 200
    assert reply.header("cache-control") == "no-store"  # one session's state: never cached
    parsed = PageText()
    parsed.feed(reply.body.decode())
    return parsed


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_first_html_shows_the_session_before_any_script_runs(framework: str) -> None:
    config = SessionConfig(secret_key=KEY, instance_id="shop-a")
    client = ShopClient(framework, make_app(framework, config))
    assert client.call("POST", "/login", {"user": "ann"}).status == 200
    for item in ("apple", "pear"):
        client.call("POST", f"/cart/{item}")

    page = first_html(client)
    assert page.text["instance"] == "shop-a"
    assert page.text["store"] == "memory://"
    assert page.text["who"] == "Logged in as ann."
    assert {"login-fields", "lost"} <= page.hidden and "logout" not in page.hidden
    assert page.cart == ["apple", "pear"]
    assert page.text["count"] == "2"
    assert json.loads(page.text["state"]) == {
        "user": "ann", "cart": ["apple", "pear"], "instance": "shop-a", "store": "memory://"}

    client.call("POST", "/logout")
    page = first_html(client)
    assert page.text["who"] == "Not logged in."
    assert "logout" in page.hidden and "login-fields" not in page.hidden
    assert (page.cart, page.text["count"], page.text["instance"]) == ([], "0", "shop-a")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_first_html_of_a_new_visitor_names_the_instance(framework: str) -> None:
    config = SessionConfig(secret_key=KEY, instance_id="shop-b")
    page = first_html(ShopClient(framework, make_app(framework, config)))
    assert (page.text["instance"], page.text["who"], page.cart) == ("shop-b", "Not logged in.",
                                                                    [])
    assert "?" not in page.text["instance"] + page.text["store"]


def test_rendered_values_are_escaped_in_the_html_and_in_the_script_state() -> None:
    hostile = '</script><img src=x onerror=alert(1)>&"'
    html = shop_page.render(user=hostile, cart=[hostile], instance=hostile, store=hostile)
    assert "<img" not in html and "</script><" not in html
    page = PageText()
    page.feed(html)
    assert page.text["who"] == f"Logged in as {hostile}."
    assert page.text["instance"] == page.text["store"] == hostile
    assert page.cart == [hostile]
    assert json.loads(page.text["state"]) == {"user": hostile, "cart": [hostile],
                                              "instance": hostile, "store": hostile}
