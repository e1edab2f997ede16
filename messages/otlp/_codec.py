"""OTLP's two encodings of one message tree: protobuf bytes and OTLP/JSON.

A message is a dict keyed by proto field name (snake_case) whose values are scalars, dicts (sub
messages) or lists (repeated fields); a field set to None is absent. `SCHEMA` gives each field's
number and type, so one tree gives both encodings: protobuf with a small writer of our own, and
JSON with lowerCamelCase keys, 64-bit integers as decimal strings, enums and 32-bit integers as
numbers, trace and span ids as hex and other bytes as base64.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Callable
from typing import Any

from messages.otlp._schema import SCHEMA

__all__ = ["SCHEMA", "decode_fields", "to_json", "to_protobuf"]

Message = dict[str, Any]

_U64 = (1 << 64) - 1
_pack_double = struct.Struct("<d").pack
_pack_u64 = struct.Struct("<Q").pack
_pack_i64 = struct.Struct("<q").pack


_SMALL = tuple(
    bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(1 << 14)
)


def _varint(value: int) -> bytes:
    if 0 <= value < 16384:  # tags, lengths and most counts: one lookup
        return _SMALL[value]
    value &= _U64  # negative int64 values take ten bytes, two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag32(value: int) -> int:
    """sint32's varint: 0, -1, 1, -2 ... as 0, 1, 2, 3 ..."""
    return ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


_SCALAR: dict[str, tuple[int, Callable[[Any], bytes]]] = {
    "int64": (0, lambda v: _varint(int(v))),
    "uint64": (0, lambda v: _varint(int(v))),
    "sint32": (0, lambda v: _varint(_zigzag32(int(v)))),
    "enum": (0, lambda v: _varint(int(v))),
    "bool": (0, lambda v: b"\x01" if v else b"\x00"),
    "fixed64": (1, lambda v: _pack_u64(int(v))),
    "sfixed64": (1, lambda v: _pack_i64(int(v))),
    "double": (1, lambda v: _pack_double(float(v))),
}
# Per message: field name -> (length-delimited tag, scalar tag, type, sub-message), computed once.
_COMPILED = {
    name: {
        key: (
            _varint(number << 3 | 2),
            _varint(number << 3 | _SCALAR[kind][0]) if kind in _SCALAR else b"",
            kind,
            sub,
        )
        for key, (number, kind, sub) in fields.items()
    }
    for name, fields in SCHEMA.items()
}


def _utf8(text: str) -> bytes:
    # A lone surrogate (no UTF-8 form) becomes "?", in both encodings alike.
    return str.encode(text, "utf-8", "replace")


def _scalar_any_value(value: object) -> bytes:
    """AnyValue bytes of a str, bool, int or float (the usual attribute values)."""
    if isinstance(value, str):
        return _length_delimited(b"\x0a", _utf8(value))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    raise TypeError(f"no AnyValue for {type(value).__name__}")


_kv_memo: dict[tuple[str, type, object], bytes] = {}


def _key_value(pair: tuple[str, object]) -> bytes:
    """A `(key, scalar)` KeyValue's bytes; the many that repeat from log to log are kept."""
    key, value = pair
    memo_key = (key, type(value), value)
    hit = _kv_memo.get(memo_key)
    if hit is None:
        hit = _length_delimited(b"\x0a", _utf8(key))
        hit += _length_delimited(b"\x12", _scalar_any_value(value))
        if len(_kv_memo) >= 4096:
            _kv_memo.clear()
        _kv_memo[memo_key] = hit
    return hit


def to_protobuf(message: Message, name: str) -> bytes:
    """Encode a message tree of type `name` to protobuf bytes (repeated scalars packed).

    A KeyValue may also be given as a `(key, scalar)` tuple, the form the mapping produces.
    """
    fields = _COMPILED[name]
    out = bytearray()
    for key, value in message.items():
        if value is None:
            continue
        tag, scalar_tag, kind, sub = fields[key]
        if kind == "message":
            for item in value if isinstance(value, list) else (value,):
                body = _key_value(item) if isinstance(item, tuple) else to_protobuf(item, sub)
                out += tag
                out += _varint(len(body))
                out += body
        elif kind == "string":
            out += _length_delimited(tag, _utf8(value))
        elif kind in ("bytes", "id"):
            out += _length_delimited(tag, bytes(value))
        else:
            pack = _SCALAR[kind][1]
            if isinstance(value, list):
                out += _length_delimited(tag, b"".join(pack(v) for v in value))
            else:
                out += scalar_tag + pack(value)
    return bytes(out)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _json_double(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


_JSON_SCALAR: dict[str, Callable[[Any], Any]] = {
    "string": str,
    "bool": bool,
    "enum": int,
    "int64": lambda v: str(int(v)),
    "uint64": lambda v: str(int(v)),
    "sint32": int,
    "fixed64": lambda v: str(int(v)),
    "sfixed64": lambda v: str(int(v)),
    "double": _json_double,
    "id": lambda v: bytes(v).hex(),
    "bytes": lambda v: base64.b64encode(bytes(v)).decode("ascii"),
}


_CAMEL = {key: _camel(key) for fields in SCHEMA.values() for key in fields}


def _json_key_value(pair: tuple[str, object]) -> dict[str, Any]:
    key, value = pair
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": _json_double(value)}}
    raise TypeError(f"no AnyValue for {type(value).__name__}")


def _json_tree(message: Message, name: str) -> dict[str, Any]:
    fields = SCHEMA[name]
    out: dict[str, Any] = {}
    for key, value in message.items():
        if value is None:
            continue
        _number, kind, sub = fields[key]
        if kind == "message":
            if isinstance(value, list):
                out[_CAMEL[key]] = [
                    _json_key_value(item) if isinstance(item, tuple) else _json_tree(item, sub)
                    for item in value
                ]
            else:
                out[_CAMEL[key]] = _json_tree(value, sub)
            continue
        convert = _JSON_SCALAR[kind]
        out[_CAMEL[key]] = (
            [convert(v) for v in value] if isinstance(value, list) else convert(value)
        )
    return out


def to_json(message: Message, name: str) -> bytes:
    """Encode a message tree of type `name` as OTLP/JSON (UTF-8)."""
    tree = _json_tree(message, name)
    text = json.dumps(tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return str.encode(text, "utf-8", "replace")


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("protobuf: truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def decode_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Split protobuf bytes into (field number, value) pairs; raises ValueError if malformed.

    Varints come back as unsigned ints, length-delimited fields and fixed-width ones as bytes.
    """
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("protobuf: field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = data[pos : pos + width], pos + width
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"protobuf: unsupported wire type {wire}")
        if pos > len(data):
            raise ValueError("protobuf: truncated field")
        fields.append((number, value))
    return fields
