"""Peer store URLs: ``<peer>+<store URL>``, e.g. ``flask-session+redis://host:6379/0``, with
the peer's own settings as query options, checked by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..config import parse_bool
from ..errors import ConfigError

Parsers = Mapping[str, Callable[[str], Any]]


def split(url: str) -> tuple[str, str]:
    """``(peer, store URL)`` of a peer URL."""
    peer, _, inner = url.partition("+")
    return peer.lower(), inner


def take_options(url: str, parsers: Parsers, *, others: bool = False
                 ) -> tuple[dict[str, Any], str]:
    """The options ``parsers`` names, each parsed, and the URL without them. Any other option
    is a ConfigError naming the valid ones, unless ``others`` (they go to the driver)."""
    base, _, query = url.partition("?")
    options: dict[str, Any] = {}
    kept: list[tuple[str, str]] = []
    for name, raw in parse_qsl(query, keep_blank_values=True):
        parser = parsers.get(name)
        if parser is None:
            if not others:
                raise ConfigError(f"unknown option {name!r} in the peer store URL; valid "
                                  f"options: {', '.join(sorted(parsers))}")
            kept.append((name, raw))
            continue
        if name in options:
            raise ConfigError(f"peer store URL option {name} is given twice; give it once")
        try:
            options[name] = parser(raw)
        except (TypeError, ValueError, ConfigError) as exc:
            raise ConfigError(f"peer store URL option {name}={raw!r} is invalid: {exc}") from None
    return options, base + ("?" + urlencode(kept) if kept else "")


def flag(name: str) -> Callable[[str], bool]:
    return lambda raw: parse_bool(raw, f"peer store URL option {name}")


def seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def text(raw: str) -> str:
    return raw
