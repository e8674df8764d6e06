"""Reading the session cookie from a ``Cookie`` header and writing ``Set-Cookie`` values.

Written by hand rather than with ``http.cookies``: that module is slow, drops a whole header
on one bad cookie, and raises on input an attacker controls. The parser never raises and
returns every value sent under our name, in order (a browser sends the most specific first).

``Set-Cookie`` values are written the way the app's framework writes its own session cookie
(``CookieStyle``): attribute names, case and order as Starlette's ``SessionMiddleware`` or
Werkzeug (Flask) write them, so tests and tools that read the header keep working.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from email.utils import formatdate
from typing import Literal

from .config import SessionConfig
from .errors import SessionTooLarge

MAX_COOKIE_BYTES = 4096
_EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"


def cookie_values(header: str | None, name: str) -> list[str]:
    """All values of cookie ``name`` in a ``Cookie`` header (several headers joined by ``;``),
    in order."""
    if not header or name not in header:
        return []
    return list(_cookie_values(header, name))


@functools.lru_cache(maxsize=2048)
def _cookie_values(header: str, name: str) -> tuple[str, ...]:
    """A browser sends the same ``Cookie`` header request after request: taking it apart
    again would cost more than finding it here."""
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
    return tuple(found)


class CookieStyle(enum.Enum):
    """How ``Set-Cookie`` attributes are spelled and ordered."""

    #: ``Expires`` and ``Max-Age``, then ``Path``, ``Domain``, ``HttpOnly``, ``SameSite``...
    SESSIONKIT = "sessionkit"
    #: Starlette's ``SessionMiddleware``: lower-case ``path``, ``Max-Age`` only, ``httponly``.
    STARLETTE = "starlette"
    #: Werkzeug's ``dump_cookie`` (Flask): ``Domain``, ``Expires``, ``Secure``, ``HttpOnly``...
    WERKZEUG = "werkzeug"


@dataclasses.dataclass(frozen=True, slots=True)
class CookieSettings:
    """Every attribute of the session cookie, as configured."""

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    httponly: bool = True
    secure: bool | Literal["auto"] = "auto"
    samesite: str | None = "lax"
    partitioned: bool = False
    #: False: a browser-session cookie (no expiry).
    persistent: bool = True
    #: ``Max-Age`` counted from each response; None: until the session's absolute deadline.
    max_age: float | None = None
    #: Send a persistent cookie again on every response of a stored session.
    refresh: bool = False

    @classmethod
    def from_config(cls, config: SessionConfig, name: str | None = None) -> CookieSettings:
        return cls(
            name=name or config.cookie_name, path=config.cookie_path,
            domain=config.cookie_domain, httponly=bool(config.cookie_httponly),
            secure=config.cookie_secure, samesite=config.cookie_samesite,
            partitioned=bool(config.cookie_partitioned),
            persistent=bool(config.cookie_persistent), max_age=config.cookie_max_age_seconds,
            refresh=bool(config.cookie_refresh),
        )


class CookieWriter:
    """Builds ``Set-Cookie`` values for one ``CookieSettings`` in one ``CookieStyle``.

    Attribute strings are built once; a ``Set-Cookie`` costs one format per response."""

    __slots__ = ("_after", "_before", "_delete", "_secure_mode", "_style", "name",
                 "settings")

    def __init__(self, settings: CookieSettings,
                 style: CookieStyle = CookieStyle.SESSIONKIT) -> None:
        self.settings = settings
        #: The cookie's name (read per request: an attribute, not a property).
        self.name: str = settings.name
        self._style = style
        forced = settings.name.startswith(("__Host-", "__Secure-")) or settings.partitioned
        self._secure_mode: bool | None = True if forced else (
            None if settings.secure == "auto" else bool(settings.secure))
        # (attributes before the expiry, attributes after it), for plain and Secure cookies.
        self._before = {False: self._attributes(False, before=True),
                        True: self._attributes(True, before=True)}
        self._after = {False: self._attributes(False, before=False),
                       True: self._attributes(True, before=False)}
        self._delete = {secure: self._deletion(secure) for secure in (False, True)}

    def _attributes(self, secure: bool, *, before: bool) -> str:
        s = self.settings
        samesite = s.samesite
        if self._style is CookieStyle.STARLETTE:
            if before:
                return f"; path={s.path}"
            text = "; httponly" if s.httponly else ""
            text += f"; samesite={samesite}" if samesite else ""
            text += "; secure" if secure else ""
            text += f"; domain={s.domain}" if s.domain else ""
            return text + ("; partitioned" if s.partitioned else "")
        if self._style is CookieStyle.WERKZEUG:
            if before:
                return f"; Domain={s.domain.lstrip('.')}" if s.domain else ""
            text = "; Secure" if secure else ""
            text += "; HttpOnly" if s.httponly else ""
            text += f"; Path={s.path}"
            text += f"; SameSite={samesite.title()}" if samesite else ""
            return text + ("; Partitioned" if s.partitioned else "")
        if before:
            return ""
        text = f"; Path={s.path}"
        text += f"; Domain={s.domain}" if s.domain else ""
        text += "; HttpOnly" if s.httponly else ""
        text += f"; SameSite={samesite.capitalize()}" if samesite else ""
        text += "; Secure" if secure else ""
        return text + ("; Partitioned" if s.partitioned else "")

    def _deletion(self, secure: bool) -> str:
        name = self.name
        if self._style is CookieStyle.STARLETTE:
            return (f"{name}=null{self._before[secure]}; expires={_EXPIRED}"
                    f"{self._after[secure]}")
        return f"{name}={self._before[secure]}; Expires={_EXPIRED}; Max-Age=0{self._after[secure]}"

    def _secure(self, https: bool) -> bool:
        return https if self._secure_mode is None else self._secure_mode

    def set(self, value: str, *, max_age: float | None, now: float, https: bool) -> str:
        """A cookie that lives ``max_age`` seconds (None: until the browser closes). Raises
        ``SessionTooLarge`` rather than emit a cookie a browser drops."""
        secure = self._secure(https)
        header = f"{self.name}={value}{self._before[secure]}"
        if max_age is not None:
            seconds = max(1, int(max_age))
            style = self._style
            if style is CookieStyle.STARLETTE:
                header += f"; Max-Age={seconds}"
            elif style is CookieStyle.WERKZEUG:
                header += f"; Expires={formatdate(now + seconds, usegmt=True)}"
            else:
                header += f"; Expires={formatdate(now + seconds, usegmt=True)}; Max-Age={seconds}"
        header += self._after[secure]
        if len(header) > MAX_COOKIE_BYTES:
            raise SessionTooLarge(len(header), MAX_COOKIE_BYTES)
        return header

    def delete(self, *, https: bool) -> str:
        """A cookie that makes the browser forget ours (same name, path and domain)."""
        return self._delete[self._secure(https)]
