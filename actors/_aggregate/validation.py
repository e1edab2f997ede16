"""One validation of driver-built data, driven by the attrs classes' declared field types.

An event is checked field by field against its class's annotations (`None` only where the type
allows it); a field holding a record is checked the same way, recursively. The reason for a bad
event is the name of its first bad field (``type`` for something that is not an event at all).

The rules (`rules()`: per field its check, made from the annotation) are the definition. What
runs per event is one function per class compiled from them, with the common checks written
inline (an event of twenty fields is checked in about a microsecond instead of twenty calls);
a test compares the two on fuzzed events.
"""

from __future__ import annotations

import enum
import math
import typing
from collections.abc import Callable
from typing import Any

import attrs

from messages import events as ev
from messages.errors import is_error_code

__all__ = ["EVENT_CLASSES", "first_bad", "invalid_reason", "rules"]

EVENT_CLASSES: frozenset[type[Any]] = frozenset(typing.get_args(ev.Event))

_MAX_ID_CHARS = 256
_MAX_MS = 10.0**12
_INT63 = 2**63
# Field-specific integer ranges (end exclusive); other ints of events are counts below 2**31.
_INT_RANGES = {"http_status": (100, 600), "size_bytes": (0, _INT63)}
_FREE_TEXT = frozenset({"message"})  # anything goes: masked and capped later, never rejected


def _bad_str(value: object) -> bool:
    """Not an exact str, longer than an id may be, or not UTF-8 encodable (a lone surrogate).

    Any of these would fail the whole batch the log joins: its encoding, or the server's limit
    on one log. Exact builtin types only, here and below: a subclass may override hashing,
    comparison or rounding to raise, which would fail the aggregator's handler instead.
    """
    if type(value) is not str or len(value) > _MAX_ID_CHARS:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_id(value: object) -> bool:
    return _bad_str(value) or not value


def _bad_ms(value: object) -> bool:
    if type(value) is int or type(value) is float:
        return not (math.isfinite(value) and 0 <= value <= _MAX_MS)
    return True


_MISSING = object()
_Check = Callable[[object], bool]  # True when the value is bad
_Rule = tuple[str, _Check, bool]  # field name, its check, whether None is allowed
_RULES: dict[tuple[type[Any], bool], tuple[_Rule, ...]] = {}


def rules(cls: type[Any], in_event: bool) -> tuple[_Rule, ...]:
    """The checks of an attrs class's fields, made once per class from its annotations."""
    found = _RULES.get((cls, in_event))
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _RULES[(cls, in_event)] = tuple(
            _rule(f.name, hints[f.name], in_event)
            for f in attrs.fields(cls)
            if f.name not in _FREE_TEXT
        )
    return found


def _rule(name: str, hint: Any, in_event: bool) -> _Rule:
    members = typing.get_args(hint) or (hint,)
    wanted: type[Any] = next(t for t in members if t is not type(None))
    return name, _check_for(name, wanted, in_event), type(None) in members


def _check_for(name: str, wanted: type[Any], in_event: bool) -> _Check:
    if name == "error_code":  # exported as it is: only the shape of a SQLSTATE or vendor code
        return lambda v: type(v) is not str or not is_error_code(v)
    if attrs.has(wanted):  # a record, or an event held inside one (checked as an event)
        nested = wanted in EVENT_CLASSES
        return lambda v: type(v) is not wanted or _checker(wanted, nested)(v) is not None
    if wanted is str:
        return _bad_id if in_event and name.endswith(("_id", "_name")) else _bad_str
    if wanted is float:
        return _bad_ms
    if wanted is int:
        low, high = _INT_RANGES.get(name, (0, 2**31)) if in_event else (0, _INT63)
        return lambda v: type(v) is not int or not low <= v < high
    if wanted is bool:
        return lambda v: type(v) is not bool
    if issubclass(wanted, enum.Enum):
        return lambda v: not isinstance(v, wanted)
    return lambda v: True  # a field type this check does not know: refuse rather than guess


def first_bad(value: object, cls: type[Any], *, in_event: bool) -> str | None:
    """The name of `value`'s first bad field, by the rules one by one (the definition)."""
    for name, bad, optional in rules(cls, in_event):
        item = getattr(value, name, _MISSING)  # an instance made without __init__ may lack one
        if item is None:
            if optional:
                continue
            return name
        if item is _MISSING or bad(item):
            return name
    return None


# --- the compiled form --------------------------------------------------------------------------

_CHECKERS: dict[tuple[type[Any], bool], Callable[[object], str | None]] = {}


def _checker(cls: type[Any], in_event: bool) -> Callable[[object], str | None]:
    found = _CHECKERS.get((cls, in_event))
    if found is None:
        found = _CHECKERS[(cls, in_event)] = _compile(cls, in_event)
    return found


def _inline(name: str, bad: _Check, wanted: type[Any], in_event: bool) -> str | None:
    """The check `_check_for` made for this field, as an expression of ``x`` (None: call it;
    ``WANTED`` stands for the field's type)."""
    if name == "error_code" or attrs.has(wanted):
        return None
    if wanted is str:
        text = "type(x) is not str or len(x) > MAX_ID or (not x.isascii() and bad_text(x))"
        return f"{text} or not x" if bad is _bad_id else text
    if wanted is float:
        return "(type(x) is not float and type(x) is not int) or not 0 <= x <= MAX_MS"
    if wanted is int:
        low, high = _INT_RANGES.get(name, (0, 2**31)) if in_event else (0, _INT63)
        return f"type(x) is not int or not {low} <= x < {high}"
    if wanted is bool:
        return "type(x) is not bool"
    if issubclass(wanted, enum.Enum):
        return "not isinstance(x, WANTED)"
    return None


def _compile(cls: type[Any], in_event: bool) -> Callable[[object], str | None]:
    """One function checking `cls`'s fields in order; any surprise (a missing attribute, a
    hostile value) falls back to the rules one by one, which name the field."""
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {
        "MAX_ID": _MAX_ID_CHARS,
        "MAX_MS": _MAX_MS,
        "bad_text": _bad_str,
        "slow": lambda v: first_bad(v, cls, in_event=in_event),
    }
    lines = ["def check(v):", "    try:"]
    for i, (name, bad, optional) in enumerate(rules(cls, in_event)):
        members = typing.get_args(hints[name]) or (hints[name],)
        wanted = next(t for t in members if t is not type(None))
        expression = _inline(name, bad, wanted, in_event)
        if expression is not None and "WANTED" in expression:
            namespace[f"wanted_{i}"] = wanted
            expression = expression.replace("WANTED", f"wanted_{i}")
        if expression is None:
            namespace[f"check_{i}"] = bad
            expression = f"check_{i}(x)"
        lines.append(f"        x = v.{name}")
        none = "pass" if optional else f"return {name!r}"
        lines += [f"        if x is None: {none}", f"        elif {expression}: return {name!r}"]
    lines += ["    except Exception:", "        return slow(v)", "    return None"]
    # A code object, not a string: `exec` of a string runs as a new top-level program, which
    # would clear the interpreter's note of an unhandled KeyboardInterrupt (the host's exit
    # status) if it ran while the host exits. Made from field names only.
    exec(compile("\n".join(lines), f"<validation {cls.__name__}>", "exec"), namespace)
    checker: Callable[[object], str | None] = namespace["check"]
    return checker


def _compile_all() -> None:
    """Every event class's checks and those of the records inside them, made at import: never
    on an aggregator's thread while the host runs or exits."""
    pending = [(cls, True) for cls in EVENT_CLASSES]
    while pending:
        cls, in_event = pending.pop()
        if (cls, in_event) in _CHECKERS:
            continue
        _checker(cls, in_event)
        hints = typing.get_type_hints(cls)
        for field in attrs.fields(cls):
            members = typing.get_args(hints[field.name]) or (hints[field.name],)
            pending += [(t, t in EVENT_CLASSES) for t in members if attrs.has(t)]


def invalid_reason(event: object) -> str | None:
    """Why an event cannot be aggregated (its first bad field, or ``type``), None if well formed.

    Ids and names of events must be non-empty; records inside them may hold empty strings.
    """
    cls = type(event)
    if cls not in EVENT_CLASSES:
        return "type"
    return _checker(cls, True)(event)


_compile_all()
