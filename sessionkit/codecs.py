"""Session values as text: JSON, plus the few Python types Flask's own session keeps.

Every store keeps each session value as its own JSON text (``encode_value``), so a write can
be a delta and a store never needs to know Python types. Plain JSON values (str, int, float,
bool, None, lists and str-keyed dicts of them) are written as they are. Five more types round
trip through a tag, a one-key object whose key starts with a space, as Flask's tagged session
serializer does: ``tuple`` (``{" t": [...]}``), ``bytes`` (``{" b": "<base64>"}``), Markup and
anything with ``__html__`` (``{" m": "<html>"}``), ``uuid.UUID`` (``{" u": "<hex>"}``) and
``datetime`` (``{" d": "<ISO 8601>"}``, microseconds and time zone kept). A user's own one-key
dict whose key is a tag is escaped (``{" di": {...}}``), so no data can pose as a tag. Nothing
is ever pickled: decoding builds only these types.

Texts are valid UTF-8: a string holding a lone surrogate (which no UTF-8 store or token can
carry) is written with ``\\u`` escapes instead, and reads back unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import uuid
from datetime import datetime
from operator import is_
from typing import Any

_orjson: Any
try:  # the fast codec (the ``fast`` extra); the standard library's json otherwise
    import orjson as _orjson
except ImportError:  # pragma: no cover  (exercised by the release check's core profile)
    _orjson = None

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ascii_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_decoder = json.JSONDecoder()

_NATIVE = frozenset({str, int, bool, type(None)})
#: orjson reads an integer beyond 64 bits as a float: one this large goes back to ``json``.
_BIG = 2.0**63
_ESCAPED_DICT = " di"
_ESCAPE_SUFFIX = "~"
#: What marks a value as tagged in its text (a one-key object whose key starts with a space).
_TAG_MARK = '{" '


def _markup(text: str) -> Any:
    try:
        from markupsafe import Markup
    except ImportError:  # no markupsafe: nobody here can have made a Markup, keep the text
        return text
    return Markup(text)  # noqa: S704  (it was Markup, escaped already, when it was stored)


def _tagged_dict(value: dict[str, Any]) -> dict[str, Any]:
    """Undo the escape of a user's dict that looked like a tag."""
    return {key[: -len(_ESCAPE_SUFFIX)]: item for key, item in value.items()}


_DECODERS: dict[str, Any] = {
    " t": tuple,
    " b": lambda text: base64.b64decode(text.encode("ascii"), validate=True),
    " m": _markup,
    " u": uuid.UUID,
    " d": datetime.fromisoformat,
    _ESCAPED_DICT: _tagged_dict,
}


def _is_plain(value: Any) -> bool:
    """True when the JSON encoder writes ``value`` exactly (no tags needed, no NaN).
    A container of scalars is judged by one C-level pass over its items' types."""
    kind = type(value)
    if kind in _NATIVE:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        items = value
    elif kind is dict:
        if len(value) == 1:
            [key] = value
            if type(key) is str and key in _DECODERS:
                return False
        items = value.values()
    else:
        return False
    if _NATIVE.issuperset(map(type, items)):
        return True
    return all(type(item) in _NATIVE or _is_plain(item) for item in items)


def _tag(value: Any) -> Any:
    """``value`` as plain JSON values, with tags for the extra types."""
    kind = type(value)
    if kind in _NATIVE or kind is float:
        return value
    if kind is list:
        return [_tag(item) for item in value]
    if kind is dict or isinstance(value, dict):
        items = {key: _tag(item) for key, item in value.items()}
        if len(items) == 1:
            [key] = items
            if type(key) is str and key in _DECODERS:
                return {_ESCAPED_DICT: {key + _ESCAPE_SUFFIX: items[key]}}
        return items
    if kind is tuple:
        return {" t": [_tag(item) for item in value]}
    if callable(getattr(value, "__html__", None)):
        return {" m": str(value.__html__())}
    if isinstance(value, bytes | bytearray):
        return {" b": base64.b64encode(value).decode("ascii")}
    if kind is uuid.UUID:
        return {" u": value.hex}
    if isinstance(value, datetime):
        return {" d": value.isoformat()}
    if isinstance(value, list | tuple):  # subclasses: as the JSON encoder writes them
        return [_tag(item) for item in value]
    return value  # str/int/float subclasses as JSON writes them; anything else fails there


def encode_value(key: str, value: Any) -> str:
    """The canonical text of one session value; a clear ``TypeError`` names the key."""
    plain = _is_plain(value)
    if plain and _orjson is not None:
        try:  # the same JSON: orjson refuses what json would write otherwise (big integers,
            fast: bytes = _orjson.dumps(value)  # non-str keys, lone surrogates)
        except TypeError:
            pass
        else:
            return fast.decode()
    try:
        text = _encoder.encode(value if plain else _tag(value))
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: escape it (decodes the same)
                text = _ascii_encoder.encode(value if _is_plain(value) else _tag(value))
        return text
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"session[{key!r}] holds a value sessions cannot keep ({exc}); sessions store JSON "
            f"values (str, int, float, bool, None, lists and dicts of them with str keys) and "
            f"tuple, bytes, Markup, uuid.UUID and datetime"
        ) from None


def json_text(value: Any) -> str:
    """The text of a value that is already in stored form (decoded without tags, as a JSON
    token's claims are): written back exactly, tags untouched."""
    text = _encoder.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _ascii_encoder.encode(value)
    return text


def _untag(value: dict[str, Any]) -> Any:
    if len(value) == 1:
        [(key, item)] = value.items()
        decode = _DECODERS.get(key)
        if decode is not None:
            try:
                return decode(item)
            except (TypeError, ValueError):
                return value  # not a well-formed tag: kept as the dict it is
    return value


_tagged_decoder = json.JSONDecoder(object_hook=_untag)


def decode_value(text: str) -> Any:
    """The value of a stored text (``ValueError`` if it is not JSON)."""
    if _TAG_MARK in text:
        return _tagged_decoder.decode(text)
    if _orjson is not None:
        try:
            value = _orjson.loads(text)
        except ValueError:  # not JSON, or JSON orjson refuses (an escaped lone surrogate):
            pass  # json decides, and raises its own ValueError for what is not JSON
        else:
            if _exact(value):
                return value
    return _decoder.decode(text)


def _exact(value: Any) -> bool:
    """No float orjson may have made of an integer beyond 64 bits (json keeps it an int).
    A container of scalars other than floats is judged by one C-level pass."""
    kind = type(value)
    if kind is list:
        items = value
    elif kind is dict:
        items = value.values()
    else:
        return kind is not float or not (value.is_integer() and abs(value) >= _BIG)
    if _NATIVE.issuperset(map(type, items)):
        return True
    return all(type(item) in _NATIVE or _exact(item) for item in items)


#: Decoded flat containers by their text (``decode_copy``), at most this many, each text at
#: most ``_FLAT_TEXT_MAX`` characters: a bound of a few megabytes.
_FLAT_CACHE_SIZE = 2048
_FLAT_TEXT_MAX = 4096
_flat_cache: dict[str, Any] = {}
_MISSING: Any = object()


def decode_copy(text: str) -> tuple[Any, Any]:
    """``(value, pristine)``: the value of a stored text, and, when it is a flat list or dict
    (its members all str, int, float, bool or None), the pristine decoded value it is a
    shallow copy of, else None.

    Most requests read a session without changing it, and most session values are flat (a
    cart, a profile). Decoding is a pure function of the text, so a flat value is decoded
    once and each request gets a shallow copy of it (its members are immutable: the copy is
    as good as a fresh decode); and a copy whose members are still the very objects of its
    pristine value cannot have changed, which spares re-encoding it at commit."""
    pristine = _flat_cache.get(text, _MISSING)
    if pristine is not _MISSING:
        kind = type(pristine)
        if kind is list or kind is dict:
            return pristine.copy(), pristine
        return pristine, None  # an immutable scalar: the very object will do
    value = decode_value(text)
    kind = type(value)
    if kind in _NATIVE or kind is float:
        if len(text) <= _FLAT_TEXT_MAX:
            _remember(text, value)
        return value, None
    if (kind is list or kind is dict) and len(text) <= _FLAT_TEXT_MAX and _flat(text):
        _remember(text, value)
        return value.copy(), value
    return value, None


def _remember(text: str, value: Any) -> None:
    if len(_flat_cache) >= _FLAT_CACHE_SIZE:
        # The oldest goes; another thread may have taken it (or changed the dict) first.
        with contextlib.suppress(KeyError, StopIteration, RuntimeError):
            del _flat_cache[next(iter(_flat_cache))]
    _flat_cache[text] = value


def _flat(text: str) -> bool:
    """The text of a list or dict opens no other container (a bracket inside a string counts
    as one too: such values are merely decoded afresh every time)."""
    return text.find("[", 1) < 0 and text.find("{", 1) < 0


def unchanged_copy(value: Any, pristine: Any) -> bool:
    """Whether ``value``, a shallow copy of the flat ``pristine``, still holds its very
    members in their order (then its text is the one it was decoded from)."""
    if len(value) != len(pristine):
        return False
    if type(value) is dict:
        return (all(map(is_, value, pristine))
                and all(map(is_, value.values(), pristine.values())))
    return all(map(is_, value, pristine))
