"""The shop's one HTML page, shared by both example apps: a login form, add and remove buttons,
the cart, and which instance served the request. Inline CSS and JS calling the shop's JSON
routes: no build step, no CDN, works offline.

The first state (user, cart, serving instance, store) is rendered into the HTML by the server,
so the page is right before its script runs (or without it); the script then takes over and
updates the page after every click.

The page remembers the last session it saw (in ``sessionStorage``); when the server answers with
a fresh session although nobody logged out (the instance that held it is gone, in local mode),
it says so instead of silently showing an empty cart.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """<style>
  body { font: 16px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 36rem;
         padding: 0 1rem; color: #1d232a; }
  h1 { font-size: 1.4rem; margin-bottom: .3rem; }
  .box { border: 1px solid #d9dee3; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
  .muted { color: #66707a; font-size: .9rem; }
  #served { font-size: 1.1rem; }
  #served b { background: #e8f0fe; padding: 0 .4rem; border-radius: 4px; }
  #lost { background: #fdecea; border-color: #f5c2bd; color: #8c1d18; }
  #cart li { margin: .2rem 0; }
  button { font: inherit; padding: .15rem .7rem; margin: .1rem; cursor: pointer; }
  input { font: inherit; padding: .15rem .4rem; }
  [hidden] { display: none; }
</style>"""

_SCRIPT = """<script>
"use strict";
const $ = id => document.getElementById(id);
let last = JSON.parse(sessionStorage.getItem("shop-last") || "null");

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined, cache: "no-store"});
  let payload = {};
  try { payload = await response.json(); } catch (e) { payload = {}; }
  if (!response.ok) $("message").textContent = payload.error || ("error " + response.status);
  else $("message").textContent = "";
  return payload;
}

function lostCheck(now, expectedGone) {
  if (!last) return;
  const kept = last.cart.filter(item => !expectedGone.includes(item));
  const lostItems = kept.filter(item => !now.cart.includes(item));
  const lostUser = last.user && !now.user && !expectedGone.includes("@user");
  if (lostItems.length || lostUser) {
    const what = [last.user ? "you were logged in as " + last.user : "",
                  lostItems.length ? "your cart held " + lostItems.join(", ") : ""]
                 .filter(Boolean).join(" and ");
    $("lost").textContent = "Your session was lost: " + what + " on instance " + last.instance
      + ". Instance " + now.instance + " does not have it and started a new session.";
    $("lost").hidden = false;
  }
}

function show(now, expectedGone) {
  lostCheck(now, expectedGone);
  $("instance").textContent = now.instance;
  $("store").textContent = now.store;
  $("moved").textContent = last && last.instance && last.instance !== now.instance
    ? "(the request before was served by " + last.instance + ")" : "";
  $("who").textContent = now.user ? "Logged in as " + now.user + "." : "Not logged in.";
  $("login-fields").hidden = !!now.user;
  $("logout").hidden = !now.user;
  $("devices-link").hidden = !now.user;
  const list = $("cart");
  list.replaceChildren();
  for (const item of now.cart) {
    const li = document.createElement("li");
    li.textContent = item + " ";
    const remove = document.createElement("button");
    remove.textContent = "remove";
    remove.dataset.remove = item;
    remove.addEventListener("click", () => act("DELETE", "cart/" + encodeURIComponent(item),
                                               null, [item]));
    li.appendChild(remove);
    list.appendChild(li);
  }
  $("count").textContent = String(now.cart.length);
  last = now;
  sessionStorage.setItem("shop-last", JSON.stringify(now));
  document.body.dataset.ready = "1";
}

async function refresh(expectedGone) {
  const me = await call("GET", "whoami");
  const cart = await call("GET", "cart");
  show({user: me.user || null, instance: me.instance, store: me.store, cart: cart.cart || []},
       expectedGone || []);
}

async function act(method, path, body, expectedGone) {
  document.body.dataset.ready = "0";
  await call(method, path, body);
  await refresh(expectedGone);
}

$("login-form").addEventListener("submit", event => {
  event.preventDefault();
  act("POST", "login", {user: $("user").value, remember: $("remember").checked});
});
$("logout").addEventListener("click", () => {
  $("lost").hidden = true;
  act("POST", "logout", null, ["@user", ...(last ? last.cart : [])]);
});
for (const button of document.querySelectorAll("[data-add]")) {
  button.addEventListener("click", () => act("POST", "cart/" + button.dataset.add));
}
show(JSON.parse($("state").textContent), []);  // the state the server rendered the page with
</script>"""


def _cart_item(item: str) -> str:
    """One cart line, as the script builds it."""
    return f'<li>{escape(item)} <button data-remove="{escape(item)}">remove</button></li>'


def _state_json(state: dict[str, Any]) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` can end it early."""
    text = json.dumps(state, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(user: str | None, cart: list[str], instance: str, store: str) -> str:
    """The page showing this session: who is logged in, the cart, the instance that served the
    request and the store, all escaped; the same state goes to the script as JSON."""
    state = {"user": user, "cart": cart, "instance": instance, "store": store}
    who = f"Logged in as {escape(user)}." if user else "Not logged in."
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessionkit shop</title>
{_STYLE}
</head>
<body>
<h1>sessionkit shop</h1>
<div class="muted">A demo shop whose cart and login live in a sessionkit session.</div>

<div class="box" id="served">Served by instance <b id="instance">{escape(instance)}</b>
  <span class="muted" id="moved"></span>
  <div class="muted">store <span id="store">{escape(store)}</span></div></div>

<div class="box" id="lost" hidden></div>

<div class="box">
  <form id="login-form">
    <span id="who">{who}</span>
    <span id="login-fields"{" hidden" if user else ""}><input id="user" name="user"
      placeholder="your name" autocomplete="username" required maxlength="64">
      <button id="login">Log in</button>
      <label class="muted"><input type="checkbox" id="remember"> keep me signed in</label></span>
    <button id="logout" type="button"{"" if user else " hidden"}>Log out</button>
    <a href="devices" id="devices-link"{"" if user else " hidden"}>Your devices</a>
  </form>
</div>

<div class="box">
  <div>Add to cart:
    <button data-add="apple">apple</button> <button data-add="pear">pear</button>
    <button data-add="plum">plum</button> <button data-add="kiwi">kiwi</button></div>
  <h2 style="font-size:1.1rem">Cart (<span id="count">{len(cart)}</span>)</h2>
  <ul id="cart">{"".join(_cart_item(item) for item in cart)}</ul>
  <div class="muted" id="message"></div>
</div>

<script type="application/json" id="state">{_state_json(state)}</script>
{_SCRIPT}
</body>
</html>
"""
