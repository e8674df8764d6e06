"""Reading the session cookie from a ``Cookie`` header and writing ``Set-Cookie`` values.

Written by hand rather than with ``http.cookies``: that module is slow, drops a whole header
on one bad cookie, and raises on input an attacker controls. This parser never raises and
returns every value sent under our name, in order (a browser sends the most specific first).
"""

from __future__ import annotations

from email.utils import formatdate

from .config import SessionConfig
from .errors import SessionTooLarge

MAX_COOKIE_BYTES = 4096
_EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"


def cookie_values(header: str | None, name: str) -> list[str]:
    """All values of cookie ``name`` in a ``Cookie`` header (several headers joined by ``;``),
    in order."""
    if not header or name not in header:
        return []
    found: list[str] = []
    prefix = name + "="
    # Pieces end at ";" and nowhere else (RFC 6265 5.4; a "," is part of a value, as Starlette
    # and Werkzeug read it): splitting on "," too would let ``q=x,session=<attacker>`` in one
    # cookie's value shadow the real session cookie. str methods, not a regex: a JWT cookie
    # makes the header kilobytes long and a regex split costs 10 µs there.
    for piece in header.split(";"):
        piece = piece.strip()
        if piece.startswith(prefix):
            value = piece[len(prefix):].strip()
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            found.append(value)
    return found


class CookieWriter:
    """Builds ``Set-Cookie`` values with the configured attributes, for set and delete alike."""

    __slots__ = ("_name", "_plain_attrs", "_secure_attrs", "_secure_mode", "persistent")

    def __init__(self, config: SessionConfig) -> None:
        self._name = config.cookie_name
        self.persistent = config.cookie_persistent
        attrs = f"; Path={config.cookie_path}"
        if config.cookie_domain:
            attrs += f"; Domain={config.cookie_domain}"
        if config.cookie_httponly:
            attrs += "; HttpOnly"
        attrs += f"; SameSite={config.cookie_samesite.capitalize()}"
        self._plain_attrs = attrs
        self._secure_attrs = attrs + "; Secure"
        forced = config.cookie_name.startswith(("__Host-", "__Secure-"))
        self._secure_mode: bool | None = True if forced else (
            None if config.cookie_secure == "auto" else bool(config.cookie_secure)
        )

    def _attrs(self, https: bool) -> str:
        secure = https if self._secure_mode is None else self._secure_mode
        return self._secure_attrs if secure else self._plain_attrs

    def set(self, value: str, *, max_age: float, now: float, https: bool) -> str:
        """A cookie that lives ``max_age`` seconds (or until the browser closes when not
        persistent). Raises ``SessionTooLarge`` rather than emit a cookie a browser drops."""
        header = f"{self._name}={value}"
        if self.persistent:
            seconds = max(1, int(max_age))
            header += f"; Expires={formatdate(now + seconds, usegmt=True)}; Max-Age={seconds}"
        header += self._attrs(https)
        if len(header) > MAX_COOKIE_BYTES:
            raise SessionTooLarge(len(header), MAX_COOKIE_BYTES)
        return header

    def delete(self, *, https: bool) -> str:
        """A cookie that makes the browser forget ours (same name, path and domain)."""
        return f"{self._name}=; Expires={_EXPIRED}; Max-Age=0{self._attrs(https)}"
