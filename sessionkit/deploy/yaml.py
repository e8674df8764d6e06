"""A small YAML writer for the configs Kubernetes, Traefik and Envoy read: block mappings and
sequences of plain or JSON-quoted scalars, with comments above keys (``Note``). It writes only
what every YAML parser reads back as the same value, and needs no YAML library."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """A value with a comment written above its key."""

    comment: str
    value: object


_PLAIN_SCALAR = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def yaml_scalar(value: object) -> str:
    """A scalar every YAML parser reads back as the same value: plain when unambiguous,
    otherwise a JSON string (JSON strings are valid YAML double-quoted scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN_SCALAR.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    raise TypeError(f"no YAML form for {value!r}")


def _is_block(value: object) -> bool:
    return isinstance(value, Mapping | list) and bool(value)


def _yaml_mapping(node: Mapping[str, object], indent: int) -> Iterator[str]:
    pad = " " * indent
    for key, item in node.items():
        value = item
        if isinstance(value, Note):
            yield from (f"{pad}# {line}".rstrip() for line in value.comment.splitlines())
            value = value.value
        if _is_block(value):
            yield f"{pad}{yaml_scalar(key)}:"
            yield from _yaml_block(value, indent + 2)
        else:
            yield f"{pad}{yaml_scalar(key)}: {yaml_scalar(value)}"


def _yaml_sequence(items: Sequence[object], indent: int) -> Iterator[str]:
    pad = " " * indent
    for item in items:
        if isinstance(item, Mapping) and item:
            first, *rest = _yaml_mapping(item, indent + 2)
            if first.lstrip().startswith("#"):
                raise ValueError("the first key of a list item cannot carry a Note")
            yield f"{pad}- {first.lstrip()}"
            yield from rest
        elif _is_block(item):
            raise ValueError("lists of lists have no block form here")
        else:
            yield f"{pad}- {yaml_scalar(item)}"


def _yaml_block(value: object, indent: int) -> Iterator[str]:
    if isinstance(value, Mapping):
        yield from _yaml_mapping(value, indent)
    else:
        assert isinstance(value, list)
        yield from _yaml_sequence(value, indent)


def to_yaml(documents: Sequence[Mapping[str, object]]) -> str:
    """Block-style YAML, one ``---`` document per mapping."""
    out: list[str] = []
    for document in documents:
        out.append("---")
        out.extend(_yaml_mapping(document, 0))
    return "\n".join(out) + "\n"


def yaml_file(header: list[str], documents: Sequence[Mapping[str, object]]) -> str:
    """A comment header, then the documents."""
    return "\n".join(header) + "\n" + to_yaml(documents)
