"""The OTLP/HTTP bodies: requests in `http/protobuf` or `http/json`, and partial-success answers."""

from __future__ import annotations

import json
from typing import Any

import attrs

from messages.otlp._codec import decode_fields, to_json, to_protobuf

__all__ = [
    "CONTENT_TYPES",
    "LOGS_REQUEST",
    "METRICS_REQUEST",
    "PartialSuccess",
    "decode_fields",
    "decode_partial_success",
    "encode",
]

LOGS_REQUEST = "ExportLogsServiceRequest"
METRICS_REQUEST = "ExportMetricsServiceRequest"
CONTENT_TYPES = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}
_REJECTED_JSON = {LOGS_REQUEST: "rejectedLogRecords", METRICS_REQUEST: "rejectedDataPoints"}
_I64 = 1 << 63


@attrs.frozen(kw_only=True)
class PartialSuccess:
    """How many items a 2xx answer rejected (0: all accepted), and its message."""

    rejected: int = 0
    error_message: str = ""


def encode(message: dict[str, Any], name: str, protocol: str) -> bytes:
    """Encode a request tree of type `name` for `protocol` (`http/protobuf` or `http/json`)."""
    if protocol == "http/json":
        return to_json(message, name)
    if protocol == "http/protobuf":
        return to_protobuf(message, name)
    raise ValueError(f"OTLP protocol must be http/protobuf or http/json, got {protocol!r}")


def _protobuf_answer(body: bytes) -> PartialSuccess:
    rejected, text = 0, ""
    for number, value in decode_fields(body):
        if number != 1 or not isinstance(value, bytes):
            continue
        for inner, item in decode_fields(value):
            if inner == 1 and isinstance(item, int):
                rejected = item - (1 << 64) if item >= _I64 else item
            elif inner == 2 and isinstance(item, bytes):
                text = item.decode("utf-8", errors="replace")
    return PartialSuccess(rejected=rejected, error_message=text)


def _json_answer(body: bytes, name: str) -> PartialSuccess:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"OTLP answer: not JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise ValueError("OTLP answer: expected a JSON object")
    partial = value.get("partialSuccess", value.get("partial_success")) or {}
    if not isinstance(partial, dict):
        raise ValueError("OTLP answer: partialSuccess is not an object")
    raw = partial.get(_REJECTED_JSON[name], 0)
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise ValueError("OTLP answer: rejected count is not an integer")
    try:
        rejected = int(raw)
    except ValueError:
        raise ValueError("OTLP answer: rejected count is not an integer") from None
    message = partial.get("errorMessage", "")
    return PartialSuccess(rejected=rejected, error_message=str(message)[:1024])


def decode_partial_success(body: bytes, name: str, content_type: str) -> PartialSuccess:
    """Parse a 2xx answer; an empty body accepts all. Raises ValueError if it is not one."""
    if not body.strip():
        return PartialSuccess()
    if "json" in content_type.lower():
        return _json_answer(body, name)
    return _protobuf_answer(body)
