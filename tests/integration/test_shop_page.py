"""The shop's HTML page, served at ``/`` by both examples: one self-contained document that
drives the unchanged JSON routes (the browser tests click through it)."""

from __future__ import annotations

import re

import pytest

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
