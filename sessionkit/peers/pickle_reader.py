"""Reading the data in a pickle without unpickling it.

Flask-Session's filesystem and cachelib backends keep each session as a pickle of its dict
(``cachelib.FileSystemCache``). Loading a pickle runs whatever callables it names, so a file
an attacker could write would run code. This reader never calls ``pickle.load``: it walks
the opcodes with ``pickletools.genops`` (a parser that executes nothing) on a stack machine
of its own that builds only data: None, booleans, numbers, strings, bytes, lists, tuples,
dicts and sets, and, from a fixed table, the few types session values use (``datetime``'s
date, time, datetime, timedelta and timezone, ``uuid.UUID``, ``markupsafe.Markup``), each
from arguments whose types are checked first. Any other class or function a pickle names is
never imported: it becomes an ``Opaque`` placeholder, which no session can keep, so the key
holding it is dropped (and named in the log) while the rest of the session is kept.

Opcodes that reach outside the data (persistent ids, the extension registry, out-of-band
buffers), malformed input, and inputs over ``MAX_BYTES`` are refused with ``PickleRefused``.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import pickletools
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_BYTES", "MAX_VALUES", "Opaque", "PickleRefused", "read_pickle"]

MAX_BYTES = 1 << 20  # sessions are small; a larger file is not one
#: The most values a pickle may unfold into. Its memo lets a few bytes name one list many
#: times (a list of two references to a list of two references to ...): counted as written
#: out, as encoding the session would, a small pickle could otherwise stand for billions.
MAX_VALUES = 1_000_000
_UUID_BITS = 128


class PickleRefused(ValueError):
    """The bytes are not a pickle this reader can take apart without running anything."""


@dataclasses.dataclass(frozen=True, slots=True)
class Opaque:
    """A value of a type this reader does not build: named, never imported nor called."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Global:
    """A class or function the pickle names (``GLOBAL``/``STACK_GLOBAL``), not resolved."""

    module: str
    name: str


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise PickleRefused(what)


def _timezone(value: object) -> bool:
    return isinstance(value, datetime.timezone)


def _datetime(args: tuple[Any, ...]) -> Any:
    _check(isinstance(args[0], bytes) and len(args[0]) == 10
           and (len(args) == 1 or (len(args) == 2 and _timezone(args[1]))), "datetime state")
    return datetime.datetime(*args)


def _date(args: tuple[Any, ...]) -> Any:
    _check(len(args) == 1 and isinstance(args[0], bytes) and len(args[0]) == 4, "date state")
    return datetime.date(*args)  # the pickle state form


def _time(args: tuple[Any, ...]) -> Any:
    _check(isinstance(args[0], bytes) and len(args[0]) == 6
           and (len(args) == 1 or (len(args) == 2 and _timezone(args[1]))), "time state")
    return datetime.time(*args)


def _timedelta(args: tuple[Any, ...]) -> Any:
    _check(len(args) == 3 and all(type(a) is int for a in args), "timedelta state")
    return datetime.timedelta(*args)


def _timezone_of(args: tuple[Any, ...]) -> Any:
    _check(isinstance(args[0], datetime.timedelta)
           and (len(args) == 1 or (len(args) == 2 and type(args[1]) is str)), "timezone state")
    return datetime.timezone(*args)


def _set(args: tuple[Any, ...]) -> Any:
    _check(args == () or (len(args) == 1 and type(args[0]) is list), "set state")
    return set(*args)


def _frozenset(args: tuple[Any, ...]) -> Any:
    _check(args == () or (len(args) == 1 and type(args[0]) is list), "frozenset state")
    return frozenset(*args)


def _uuid(args: tuple[Any, ...]) -> Any:
    _check(args == (), "UUID arguments")
    return uuid.UUID.__new__(uuid.UUID)  # its state comes with BUILD


def _markup(args: tuple[Any, ...]) -> Any:
    _check(len(args) == 1 and type(args[0]) is str, "Markup arguments")
    try:
        from markupsafe import Markup
    except ImportError:  # without markupsafe, the text is kept as it is
        return args[0]
    # The peer's own value, marked safe by the app that stored it, as Flask-Session returns it.
    return Markup(args[0])  # noqa: S704


#: The callables a pickle may name that this reader builds itself, by their pickled form:
#: ``REDUCE`` (datetime's types) or ``NEWOBJ`` (UUID, Markup).
_REDUCE: dict[tuple[str, str], Callable[[tuple[Any, ...]], Any]] = {
    ("datetime", "datetime"): _datetime,
    ("datetime", "date"): _date,
    ("datetime", "time"): _time,
    ("datetime", "timedelta"): _timedelta,
    ("datetime", "timezone"): _timezone_of,
    ("builtins", "set"): _set,  # protocols before 4
    ("builtins", "frozenset"): _frozenset,
}
_NEWOBJ: dict[tuple[str, str], Callable[[tuple[Any, ...]], Any]] = {
    ("uuid", "UUID"): _uuid,
    ("markupsafe", "Markup"): _markup,
}
_SCALARS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
                      "BINFLOAT", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"})
_BYTES = frozenset({"SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"})
_CONSTANTS: dict[str, Callable[[], Any]] = {
    "NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
    "EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple, "EMPTY_SET": set,
}


def read_pickle(data: bytes) -> Any:
    """The value a pickle holds, built from its data alone (see the module docstring)."""
    if len(data) > MAX_BYTES:
        raise PickleRefused(f"{len(data)} bytes (at most {MAX_BYTES})")
    machine = _Machine()
    stream = io.BytesIO(data)
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            machine.step(opcode.name, arg)
    except PickleRefused:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError,
            UnicodeError, RecursionError) as exc:
        raise PickleRefused(f"malformed: {type(exc).__name__}: {str(exc)[:80]}") from None
    _check(machine.done, "no STOP opcode")
    _check(stream.tell() == len(data), "bytes after the pickle")
    _check(_unfolds_within(machine.result, MAX_VALUES),
           f"unfolds into more than {MAX_VALUES} values (or into itself)")
    return machine.result


def _unfolds_within(value: Any, limit: int) -> bool:
    """Whether ``value``, with every shared reference written out, has at most ``limit``
    values (a cycle has infinitely many)."""
    pending = [value]
    count = 0
    while pending:
        item = pending.pop()
        count += 1
        if count > limit:
            return False
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
    return True


class _Machine:
    """The stack, marks and memo of a pickle, holding data only."""

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.unbuilt: set[int] = set()  # UUIDs whose state (BUILD) has not come yet
        self.done = False
        self.result: Any = None

    def pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def step(self, name: str, arg: Any) -> None:
        stack = self.stack
        _check(not self.done, "opcodes after STOP")
        if name in _SCALARS:
            _check(not isinstance(arg, str) or _utf8(arg), "a string with lone surrogates")
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name]())
        elif name in _BYTES:
            stack.append(bytes(arg))
        elif name in ("PROTO", "FRAME"):
            pass
        elif name == "MARK":
            self.marks.append(stack)
            self.stack = []
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(self.memo[arg])
        else:
            self.structure(name, arg)

    def structure(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name in ("LIST", "TUPLE", "FROZENSET", "DICT"):
            items = self.pop_mark()
            if name == "DICT":
                _check(len(items) % 2 == 0, "odd DICT items")
                self.stack.append(dict(zip(items[::2], items[1::2], strict=True)))
            else:
                self.stack.append({"LIST": list, "TUPLE": tuple, "FROZENSET": frozenset}[name](
                    items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            size = int(name[-1])
            _check(len(stack) >= size, "short stack")
            members = tuple(stack[-size:])
            del stack[-size:]
            stack.append(members)
        elif name in ("APPEND", "APPENDS"):
            items = [stack.pop()] if name == "APPEND" else self.pop_mark()
            _check(type(self.stack[-1]) is list, "APPEND to a non-list")
            self.stack[-1].extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = stack[-2:] if name == "SETITEM" else self.pop_mark()
            if name == "SETITEM":
                del stack[-2:]
            _check(len(items) % 2 == 0 and type(self.stack[-1]) is dict, "SETITEMS")
            self.stack[-1].update(zip(items[::2], items[1::2], strict=True))
        elif name == "ADDITEMS":
            items = self.pop_mark()
            _check(type(self.stack[-1]) is set, "ADDITEMS to a non-set")
            self.stack[-1].update(items)
        elif name in ("POP", "POP_MARK", "DUP"):
            if name == "DUP":
                stack.append(stack[-1])
            elif name == "POP_MARK" or not stack:
                self.pop_mark()
            else:
                stack.pop()
        else:
            self.objects(name, arg)

    def objects(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name in ("GLOBAL", "INST"):
            module, _, attribute = str(arg).partition(" ")
            if name == "INST":
                self.pop_mark()
                stack = self.stack
                stack.append(Opaque(module, attribute))
            else:
                stack.append(_Global(module, attribute))
        elif name == "STACK_GLOBAL":
            attribute, module = stack.pop(), stack.pop()
            _check(type(module) is str and type(attribute) is str, "STACK_GLOBAL names")
            stack.append(_Global(module, attribute))
        elif name in ("REDUCE", "NEWOBJ"):
            args, target = stack.pop(), stack.pop()
            _check(type(args) is tuple, f"{name} arguments")
            stack.append(self.build(target, args, _REDUCE if name == "REDUCE" else _NEWOBJ))
        elif name == "NEWOBJ_EX":
            del stack[-2:]
            stack.append(_opaque(stack.pop()))
        elif name == "OBJ":
            items = self.pop_mark()
            _check(bool(items), "OBJ without a class")
            self.stack.append(_opaque(items[0]))
        elif name == "BUILD":
            self.set_state(stack.pop(), stack[-1])
        elif name == "STOP":
            _check(len(stack) == 1 and not self.marks, "STOP with a stack of other than 1")
            _check(not self.unbuilt, "a UUID without its state")
            self.result = stack.pop()
            self.done = True
        else:  # persistent ids, the extension registry, out-of-band buffers, Python 2 strings
            raise PickleRefused(f"opcode {name}")

    def build(self, target: Any, args: tuple[Any, ...],
              table: dict[tuple[str, str], Callable[[tuple[Any, ...]], Any]]) -> Any:
        if isinstance(target, _Global):
            builder = table.get((target.module, target.name))
            if builder is not None:
                value = builder(args)
                if isinstance(value, uuid.UUID):
                    self.unbuilt.add(id(value))
                return value
        return _opaque(target)

    def set_state(self, state: Any, target: Any) -> None:
        if isinstance(target, Opaque):
            return  # its state goes with it
        _check(isinstance(target, uuid.UUID) and id(target) in self.unbuilt, "BUILD target")
        _check(type(state) is dict and set(state) <= {"int", "is_safe"}
               and type(state.get("int")) is int and 0 <= state["int"] < 1 << _UUID_BITS
               and state.get("is_safe") in (None, 0, -1), "UUID state")
        object.__setattr__(target, "int", state["int"])
        object.__setattr__(target, "is_safe", uuid.SafeUUID(state.get("is_safe")))
        self.unbuilt.discard(id(target))


def _opaque(target: Any) -> Opaque:
    """What a call of ``target`` becomes when this reader does not build it."""
    if isinstance(target, _Global | Opaque):
        return Opaque(target.module, target.name)
    raise PickleRefused(f"a call of a {type(target).__name__}")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
