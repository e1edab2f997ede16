"""A fast JSON encoder for frontend logs, generated at import from `messages.records`.

`encode_frontend_log(log)` returns exactly the string `messages.wire.encode_frontend_log` makes
through the cattrs converter (unstructure with unset fields omitted, then compact JSON with
``ensure_ascii=False``), byte for byte; a property-based golden test holds the two together.
It is faster because the converter builds a dict per record and the JSON encoder then walks
those dicts again: here one generated function per log walks the records once and joins strings.

How the code is generated: every proto record class is inlined into one function, field by
field in attrs order (the order of the converter's dicts); an unset (``None``) field is skipped,
a set one appends ``"name":value`` behind a comma, except for the first field of its object.
Strings go through the JSON module's own string encoder; ints, bools and enum values are
written the way `json` writes them; a value of any other type (say an int subclass in an int
field) is handed to a `json.JSONEncoder` configured like the wire's, so unusual values still
encode identically. The system configuration (one per driver and process, yet in every log),
connection parameters (one per connection), `sql_operation` records (shared by the aggregator
between statements of one kind and duration) and client contexts (shared by the logs the
aggregator builds in one millisecond) are encoded once per instance.

`escaped_frontend_log(log)` is the same log as it stands in a request body's `protoLogs` array
(its JSON as a JSON string), from a second generated function whose literals were escaped when
it was generated: JSON's string escaping maps each character on its own, so the escaped pieces,
joined, are the escaped whole, and the body needs no second pass over every log.

Safe from any thread: the memo is a dict whose races can only cost a recomputation. This module
imports only `messages.records` and `messages.enums`, never `messages.wire`, so the wire module
can import it.
"""

from __future__ import annotations

import enum
import json
import json.encoder
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from messages import records

__all__ = ["encode_frontend_log", "escaped_frontend_log", "generated_source"]

# The same settings as the wire's encoder; used only for values of unexpected types.
_dumps = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode
# What `json` itself uses for str with ensure_ascii=False (the C version when available).
_string: Callable[[str], str] = json.encoder.encode_basestring
_int_repr: Callable[[int], str] = int.__repr__

_MEMO_SIZE = 64
# Records whose instances are shared by many logs: encoded once per instance.
_MEMOISED: tuple[type[Any], ...] = (
    records.SystemConfiguration,
    records.DriverConnectionParams,
    records.SqlExecutionEvent,
    records.FrontendLogContext,
)


def _field_type(cls: type[Any], name: str) -> tuple[Any, bool]:
    """The field's inner type, and whether it is optional (``X | None``)."""
    hints = typing.get_type_hints(cls)
    hint = hints[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}.{name}: unsupported type {hint!r}")
        return args[0], True
    return hint, False


def _value_expr(inner: Any, var: str, escaped: bool = False) -> str:
    """A Python expression giving the JSON text of scalar `var` of type `inner` (`escaped`: that
    text as it stands inside a JSON string). Digits, ``true`` and ``false`` need no escaping."""
    other = f"_escape(_dumps({var}))" if escaped else f"_dumps({var})"
    if inner is str:
        text = f"_string(_string({var}))[1:-1]" if escaped else f"_string({var})"
        return f"({text} if {var}.__class__ is str else {other})"
    if inner is int:
        return f"(_int_repr({var}) if {var}.__class__ is int else {other})"
    if inner is bool:
        return f"('true' if {var} is True else 'false' if {var} is False else {other})"
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        if all(type(member.value) is str for member in inner):
            if escaped:
                return f"_string(_string({var}.value))[1:-1]"
            return f"_string({var}.value)"
        return f"_escape(_dumps({var}.value))" if escaped else f"_dumps({var}.value)"
    raise TypeError(f"no encoding for {inner!r}")


def _escape(text: str) -> str:
    """`text` as it stands inside a JSON string. JSON's string escaping maps each character on
    its own, so the escaped pieces of a text, joined, are the escaped text."""
    return _string(text)[1:-1]


def _skippable(cls: type[Any], field: attrs.Attribute[Any]) -> bool:
    """Whether the converter leaves the field out when unset (it omits values equal to None)."""
    if field.default is None:
        return True
    if field.default is attrs.NOTHING:
        return False
    raise TypeError(f"{cls.__name__}.{field.name}: a default other than None is not generated")


class _Generator:
    """Writes the source of one function per top-level record, nested records inlined.

    `escaped`: the function returns the JSON text escaped as the content of a JSON string (the
    form a log takes in a request body's `protoLogs`), every literal escaped when generated.
    """

    def __init__(self, escaped: bool = False) -> None:
        self.escaped = escaped
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "_string": _string,
            "_dumps": _dumps,
            "_int_repr": _int_repr,
            "_escape": _escape,
        }
        self._counter = 0

    def _fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def emit_object(
        self, cls: type[Any], obj: str, indent: str, memo: bool = True, key: str = ""
    ) -> None:
        """Append `key` and the JSON of record `obj` (naming a non-None `cls`) to the list `p`.

        Whether a comma goes before a field's name is decided here where it is known (nothing
        written yet, or an always-written field before it); only behind optional fields does
        the generated code keep a flag, true while nothing of the object has been written.
        """
        lit = _escape if self.escaped else str
        if memo and cls in _MEMOISED:
            fn = f"_memo_{cls.__name__}"
            self.names[fn] = _memoised(cls, self.escaped)
            if key:
                self.lines.append(f"{indent}a({lit(key)!r})")
            self.lines.append(f"{indent}a({fn}({obj}))")
            return
        fields = attrs.fields(cls)
        flag = self._fresh("empty")
        self.lines.append(f"{indent}a({lit(key + '{')!r})")
        written: bool | None = False  # None: known only at run time, from `flag`
        for index, field in enumerate(fields):
            inner, _ = _field_type(cls, field.name)
            var = self._fresh("v")
            name = _string(field.name) + ":"
            skippable = _skippable(cls, field)
            self.lines.append(f"{indent}{var} = {obj}.{field.name}")
            body = indent
            if skippable:
                self.lines.append(f"{indent}if {var} is not None:")
                body = indent + "    "
            if written is None:
                self.lines.append(f"{body}a({lit(name)!r} if {flag} else {lit(',' + name)!r})")
                name = ""
            elif written:
                name = "," + name
            if attrs.has(inner):
                self.emit_object(inner, var, body, key=name)
            else:
                if name:
                    self.lines.append(f"{body}a({lit(name)!r})")
                self.lines.append(f"{body}a({_value_expr(inner, var, self.escaped)})")
            last = index == len(fields) - 1
            if not skippable:
                written = True
            elif written is False:
                written = None
                if not last:
                    self.lines.append(f"{indent}{flag} = {var} is None")
            elif written is None and not last:
                self.lines.append(f"{body}{flag} = False")
        self.lines.append(f"{indent}a('}}')")

    def function(self, name: str, cls: type[Any], memo: bool = True, quoted: bool = False) -> str:
        """The source of ``def name(o) -> str`` encoding a `cls` instance (`quoted`: in the
        quotes of a JSON string, for an escaped generator's top-level record)."""
        self.lines.append(f"def {name}(o):")
        self.lines.append("    p = ['\"']" if quoted else "    p = []")
        self.lines.append("    a = p.append")
        self.emit_object(cls, "o", "    ", memo)
        if quoted:
            self.lines.append("    a('\"')")
        self.lines.append("    return ''.join(p)")
        self.lines.append("")
        return "\n".join(self.lines)


def _compile(
    cls: type[Any], memo: bool = True, escaped: bool = False, quoted: bool = False
) -> tuple[Callable[[Any], str], str]:
    generator = _Generator(escaped)
    name = f"{'escaped' if escaped else 'encode'}_{cls.__name__}"
    source = generator.function(name, cls, memo, quoted)
    namespace = dict(generator.names)
    exec(compile(source, f"<messages.encode {cls.__name__}>", "exec"), namespace)
    function: Callable[[Any], str] = namespace[name]
    return function, source


def _memoised(cls: type[Any], escaped: bool = False) -> Callable[[Any], str]:
    """An encoder of `cls` that remembers the JSON of the last few instances (by identity)."""
    encode, _ = _compile(cls, memo=False, escaped=escaped)
    cache: dict[int, tuple[Any, str]] = {}

    def cached(value: Any) -> str:
        hit = cache.get(id(value))
        if hit is None or hit[0] is not value:
            if len(cache) >= _MEMO_SIZE:
                cache.clear()
            hit = cache[id(value)] = (value, encode(value))
        return hit[1]

    return cached


_encode_frontend_log, _SOURCE = _compile(records.FrontendLog)
_escaped_frontend_log, _ESCAPED_SOURCE = _compile(records.FrontendLog, escaped=True, quoted=True)


def encode_frontend_log(log: records.FrontendLog) -> str:
    """Serialise one frontend log to its `protoLogs` JSON string; never differs from the wire's."""
    return _encode_frontend_log(log)


def escaped_frontend_log(log: records.FrontendLog) -> str:
    """The log as it stands in a request body's `protoLogs` array: its JSON as a JSON string,
    quotes included; exactly ``json.dumps(encode_frontend_log(log), ensure_ascii=False)``, made
    in one pass instead of encoding, then escaping the whole."""
    return _escaped_frontend_log(log)


def generated_source() -> str:
    """The source generated for frontend logs, and for each record encoded once per instance,
    for reading and debugging."""
    return "\n".join(
        [_SOURCE, _ESCAPED_SOURCE, *(_compile(cls, memo=False)[1] for cls in _MEMOISED)]
    )
