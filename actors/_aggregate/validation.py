"""One validation of driver-built data, driven by the attrs classes' declared field types.

An event is checked field by field against its class's annotations (`None` only where the type
allows it); a field holding a record is checked the same way, recursively. The reason for a bad
event is the name of its first bad field (``type`` for something that is not an event at all).
"""

from __future__ import annotations

import enum
import math
import typing
from typing import Any

import attrs

from messages import events as ev

__all__ = ["EVENT_CLASSES", "invalid_reason"]

EVENT_CLASSES: frozenset[type[Any]] = frozenset(typing.get_args(ev.Event))

_MAX_ID_CHARS = 256
_MAX_MS = 10.0**12
_INT63 = 2**63
# Field-specific integer ranges (end exclusive); other ints of events are counts below 2**31.
_INT_RANGES = {"http_status": (100, 600), "size_bytes": (0, _INT63)}
_FREE_TEXT = frozenset({"message"})  # anything goes: redacted and capped later, never rejected


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


def _bad_int(value: object, low: int, high: int) -> bool:
    return type(value) is not int or not low <= value < high


_MISSING = object()
_Field = tuple[str, type[Any], bool]  # name, declared type without None, whether None is allowed
_FIELDS: dict[type[Any], tuple[_Field, ...]] = {}


def _fields(cls: type[Any]) -> tuple[_Field, ...]:
    """Each field of an attrs class with its declared type (cached per class)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple(_field(f.name, hints[f.name]) for f in attrs.fields(cls))
    return found


def _field(name: str, hint: Any) -> _Field:
    members = typing.get_args(hint) or (hint,)
    wanted = next(t for t in members if t is not type(None))
    return name, wanted, type(None) in members


def _bad_value(name: str, wanted: type[Any], value: object, in_event: bool) -> bool:
    if attrs.has(wanted):
        return type(value) is not wanted or _first_bad(value, wanted, in_event=False) is not None
    if wanted is str:
        return _bad_id(value) if in_event and name.endswith(("_id", "_name")) else _bad_str(value)
    if wanted is float:
        return _bad_ms(value)
    if wanted is int:
        low, high = _INT_RANGES.get(name, (0, 2**31)) if in_event else (0, _INT63)
        return _bad_int(value, low, high)
    if wanted is bool:
        return type(value) is not bool
    if issubclass(wanted, enum.Enum):
        return not isinstance(value, wanted)
    return True  # a field type this check does not know: refuse rather than guess


def _first_bad(value: object, cls: type[Any], *, in_event: bool) -> str | None:
    for name, wanted, optional in _fields(cls):
        if name in _FREE_TEXT:
            continue
        item = getattr(value, name, _MISSING)  # an instance made without __init__ may lack one
        if item is _MISSING:
            return name
        if item is None:
            if optional:
                continue
            return name
        if _bad_value(name, wanted, item, in_event):
            return name
    return None


def invalid_reason(event: object) -> str | None:
    """Why an event cannot be aggregated (its first bad field, or ``type``), None if well formed.

    Ids and names of events must be non-empty; records inside them may hold empty strings.
    """
    cls = type(event)
    if cls not in EVENT_CLASSES:
        return "type"
    return _first_bad(event, cls, in_event=True)
