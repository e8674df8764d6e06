"""One rule for showing a URL without its secrets, used wherever sessionkit displays one: the
config's ``repr``, store names, ``StoreUnavailable`` and the 503 log line, the CLI and the
dashboard.

Hidden (shown as ``***``): the userinfo password, and the value of every query parameter whose
name looks like a secret (``password``, ``sentinel_password``, PostgreSQL's ``password`` and
``sslpassword``, ``token``, ``secret``, ``api_key``...). The rest stays readable, so a URL can
still be told apart from another. A password written without percent-encoding its ``@``,
``/``, ``?`` or ``#`` is hidden too, as far as it can be told from the host that follows: not
when it reads as a port and a query (``:123?x=y@...``), nor past an ``@`` it shares with a
query; percent-encode passwords (``urllib.parse.quote(password, safe="")``) to be sure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus

MASK = "***"
#: Parameter names that hold secrets, whatever the driver: ``password``, ``sslpassword``,
#: ``sentinel_password``, ``pwd``, ``token``, ``secret``, ``credentials``, ``auth...``,
#: ``api_key``/``apikey``, ``access_key``, ``signature``.
_SECRET_NAME = re.compile(
    r"pass|pwd|secret|token|credential|auth|(?:^|[_.-])(?:api)?key$|^apikey$|sig(?:nature)?$",
    re.IGNORECASE,
)
_USER_THEN_COLON = re.compile(r"[^:/@?#]*:")
#: What may follow the userinfo's ``@``: a host (or several), a port, then a path or a query.
_HOST_LIKE = re.compile(r"[A-Za-z0-9._~%\-\[\]:,]+(?:[/?#].*)?", re.DOTALL)
#: ``host:6379/0?key_prefix=a@``: the colon of a port and an "@" in a query value, no password.
_PORT_LIKE = re.compile(r"\d+(?:/[^?#]*)?\?[^=]*=.*", re.DOTALL)
_QUERY_SPLIT = re.compile(r"([&#])")
_QUERY_LIKE = re.compile(r"\?[^=]*=")
#: A URL inside some text: a scheme, ``://`` and everything up to a space or a quote.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]*")
#: Secrets this short are not searched for in free text (they would mangle it).
_MIN_SCRUBBED = 4


def is_secret_name(name: str) -> bool:
    """Whether a URL parameter called ``name`` (percent-encoded or not) holds a secret."""
    return bool(_SECRET_NAME.search(unquote_plus(name)))


def redact_url(url: str) -> str:
    """The URL with every secret replaced by ``***``: safe for logs, errors and status pages.
    Idempotent: a redacted URL is shown as it is."""
    return _split(url)[0]


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets of a URL as written and percent-decoded: what to scrub from any text that
    might quote them (a driver's error message)."""
    found = _split(url)[1]
    return tuple(dict.fromkeys([*found, *(unquote(s) for s in found)]))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each URL in it redacted and each of ``secrets`` replaced by ``***``."""
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SCRUBBED and secret != MASK:
            text = text.replace(secret, MASK)
    return text


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted."""
    return scrub(text)


def _split(url: str) -> tuple[str, list[str]]:
    """``(redacted url, secrets found)``."""
    head, sep, rest = url.partition("://")
    if not sep:
        return _redact_query(url, "")
    secrets: list[str] = []
    after_userinfo = 0
    end = _password_end(rest)
    if end is not None:
        colon = rest.index(":")
        password = rest[colon + 1:end]
        if password != MASK:
            secrets.append(password)
        rest = f"{rest[:colon + 1]}{MASK}{rest[end:]}"
        after_userinfo = colon + 1 + len(MASK) + 1  # past "@"
    shown, found = _redact_query(rest[after_userinfo:], rest[:after_userinfo])
    return f"{head}://{shown}", secrets + found


def _password_end(rest: str) -> int | None:
    """Where the password of ``user:password@host...`` (``rest`` follows ``://``) ends, or None
    when there is no password. The widest of three readings, so that what any driver would take
    for the password is hidden: the standard one (userinfo ends at the last ``@`` before the
    first ``/``, ``?`` or ``#``), SQLAlchemy's (up to the first ``@``) and, for passwords with a
    raw ``@`` and ``/``, ``?`` or ``#``, up to the last ``@`` that a host follows."""
    ends: list[int] = []
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    at = netloc.rfind("@")
    if at > 0 and ":" in netloc[:at]:
        ends.append(at)
    user = _USER_THEN_COLON.match(rest)
    if user is not None:
        start = user.end()
        first = rest.find("@", start)
        if first >= 0 and not _PORT_LIKE.fullmatch(rest[start:first]):
            ends.append(first)
        last = rest.rfind("@", start)
        if (last > first >= 0 and not _PORT_LIKE.fullmatch(rest[start:last])
                and _HOST_LIKE.fullmatch(rest[last + 1:])
                and not _QUERY_LIKE.search(rest[first:last])):  # an "@" in a query value
            ends.append(last)
    if not ends:
        return None
    end = max(ends)
    return end if end > rest.index(":") + 1 else None  # ``user:@host``: nothing to hide


def _redact_query(rest: str, prefix: str) -> tuple[str, list[str]]:
    """``prefix + rest`` with the values of secret-looking parameters in ``rest``'s query (and
    fragment: a ``#`` in an unencoded value must not end the hiding) replaced."""
    mark = rest.find("?")
    if mark < 0:
        return prefix + rest, []
    pieces = _QUERY_SPLIT.split(rest[mark + 1:])
    secrets: list[str] = []
    hiding = False
    for index in range(0, len(pieces), 2):
        name, eq, value = pieces[index].partition("=")
        if eq:
            hiding = is_secret_name(name)
            if hiding and value:
                if value != MASK:
                    secrets.append(value)
                pieces[index] = f"{name}={MASK}"
        elif hiding and name:  # the rest of an unencoded value cut by "&" or "#"
            secrets.append(name)
            pieces[index] = MASK
    return prefix + rest[:mark + 1] + "".join(pieces), secrets
