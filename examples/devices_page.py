"""The shop's "your devices" page, shared by both example apps: every session of the signed-in
user (``store.user_sessions``), this one marked, each other one with a button that signs it
out (``store.revoke``), and one that signs out all the others (``session.revoke_others()``).

Rendered by the server with plain HTML forms: no script is needed. The forms post to the same
site only: the session cookie is ``SameSite=Lax``, which browsers do not send with a form
posted from another site, so another site cannot sign the user's devices out.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from sessionkit.devices import UserSession

_STYLE = """<style>
  body { font: 16px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 40rem;
         padding: 0 1rem; color: #1d232a; }
  h1 { font-size: 1.4rem; margin-bottom: .3rem; }
  .box { border: 1px solid #d9dee3; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
  .muted { color: #66707a; font-size: .9rem; }
  .current { background: #e8f0fe; }
  #error { background: #fdecea; border-color: #f5c2bd; color: #8c1d18; }
  li { margin: .5rem 0; list-style: none; }
  ul { padding: 0; }
  button { font: inherit; padding: .15rem .7rem; cursor: pointer; }
  form { display: inline; }
</style>"""


def _when(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f'<time datetime="{moment.isoformat()}">{text}</time>'


def _row(item: UserSession, current: str | None) -> str:
    here = item.handle == current
    name = escape(item.description or "Unnamed device")
    facts = (f"signed in {_when(item.created_at)}, last seen {_when(item.last_seen)}"
             f"{', instance ' + escape(item.instance) if item.instance else ''}")
    if here:
        action = '<b data-this-device="1">this device</b>'
    else:
        action = ('<form method="post" action="devices/revoke">'
                  f'<input type="hidden" name="handle" value="{escape(item.handle)}">'
                  f'<button data-revoke="{escape(item.handle)}">Sign out</button></form>')
    marks = ' class="box current" data-current="1"' if here else ' class="box"'
    return (f'<li{marks} data-handle="{escape(item.handle)}">'
            f'<span data-field="description">{name}</span> {action}'
            f'<div class="muted">{facts}</div></li>')


def render(user: str | None, sessions: list[UserSession], current: str | None,
           instance: str, error: str | None = None) -> str:
    """The page for ``user`` (None: not signed in), listing ``sessions``; ``current`` is this
    session's handle, ``error`` a problem to show instead (a mode that cannot list)."""
    if user is None:
        body = '<div class="box" id="who">Not logged in. <a href="./">Log in</a> first.</div>'
    elif error is not None:
        body = f'<div class="box" id="error">{escape(error)}</div>'
    else:
        others = sum(1 for item in sessions if item.handle != current)
        rows = "".join(_row(item, current) for item in sessions)
        sign_out_others = ('<form method="post" action="devices/revoke-others">'
                           '<button id="revoke-others">Sign out all other devices</button>'
                           '</form>') if others else ""
        body = (f'<div id="who">Signed in as <b>{escape(user)}</b> on '
                f'<span id="count">{len(sessions)}</span> device(s).</div>'
                f'<ul id="devices">{rows}</ul>{sign_out_others}')
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your devices - sessionkit shop</title>
{_STYLE}
</head>
<body data-ready="1">
<h1>Your devices</h1>
<div class="muted">Every browser signed in to your account. Served by instance
  <b id="instance">{escape(instance)}</b>. <a href="./">Back to the shop</a></div>
{body}
</body>
</html>
"""
