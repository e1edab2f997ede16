"""The one place that knows the JSON the telemetry service speaks: a single cattrs converter.

Records (`messages.records`) become `TelemetryRequest` bodies with snake_case proto names,
UPPER_CASE enum strings and unset fields omitted; feature-flag and export answers are parsed back
into records. Everything else in the project handles records, never dicts.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import cattrs
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from messages import records

# One frontend log's JSON is written by the generated encoder: exactly what this module's
# converter and `json.dumps` give (a property test compares the two) at a third of the cost.
from messages.encode import encode_frontend_log

__all__ = [
    "TELEMETRY_FLAG_NAME",
    "TelemetryRequest",
    "converter",
    "decode_export_response",
    "decode_feature_flags",
    "decode_frontend_log",
    "decode_request",
    "encode_export_response",
    "encode_feature_flags",
    "encode_frontend_log",
    "encode_request",
    "escape_log",
    "flag_value",
    "proto_log_bytes",
    "request_body",
]

TELEMETRY_FLAG_NAME = (
    "databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForPythonDriver"
)


@attrs.frozen(kw_only=True)
class TelemetryRequest:
    """The export body: upload time, the always-empty `items`, and logs as JSON strings."""

    upload_time: int
    proto_logs: tuple[str, ...]
    items: tuple[str, ...] = ()


converter = cattrs.Converter()

_SCALARS = frozenset({str, int, bool, float, type(None)})


def _optional_args(t: Any) -> tuple[Any, ...]:
    """The non-None members of an ``X | None`` type, or () for anything else."""
    if typing.get_origin(t) not in (typing.Union, types.UnionType):
        return ()
    args = typing.get_args(t)
    return tuple(a for a in args if a is not type(None)) if type(None) in args else ()


def _optional_hook(t: Any) -> Callable[[Any], Any]:
    """One call (or none) per optional field, where cattrs' generic optional hook takes two.

    Optional scalars unstructure to themselves, so cattrs inlines them into the generated record
    functions; the generated code only calls a field's hook when the field is set, but the hook
    stays safe for ``None`` when called directly.
    """
    (inner,) = _optional_args(t)
    if inner in _SCALARS:
        return identity
    hook = converter.get_unstructure_hook(inner)
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return lambda value: None if value is None else value.value
    return lambda value: None if value is None else hook(value)


converter.register_unstructure_hook_factory(lambda t: len(_optional_args(t)) == 1, _optional_hook)


def _memoised(unstructure: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Cache the unstructured form of a few frozen instances (by identity; a copy per call)."""
    cache: dict[int, tuple[Any, dict[str, Any]]] = {}

    def cached(value: Any) -> dict[str, Any]:
        hit = cache.get(id(value))
        if hit is None or hit[0] is not value:
            if len(cache) >= _MEMO_SIZE:
                cache.clear()
            hit = cache[id(value)] = (value, unstructure(value))
        return hit[1].copy()

    return cached


_MEMO_SIZE = 64
_PROTO_RECORDS: tuple[type[Any], ...] = (
    records.SystemConfiguration,
    records.HostInfo,
    records.DriverConnectionParams,
    records.ChunkDetails,
    records.ResultLatency,
    records.OperationDetail,
    records.SqlExecutionEvent,
    records.DriverErrorInfo,
    records.SqlDriverLog,
    records.ClientContext,
    records.FrontendLogContext,
    records.FrontendLogEntry,
    records.FrontendLog,
)
for _cls in _PROTO_RECORDS:
    # Every proto field defaults to None, so "omit if default" is exactly "omit unset fields".
    converter.register_unstructure_hook(
        _cls, make_dict_unstructure_fn(_cls, converter, _cattrs_omit_if_default=True)
    )
    if _cls is records.SystemConfiguration:
        # One per driver and process, yet part of every log: unstructure each instance once.
        converter.register_unstructure_hook(_cls, _memoised(converter.get_unstructure_hook(_cls)))

converter.register_unstructure_hook(
    TelemetryRequest,
    make_dict_unstructure_fn(
        TelemetryRequest,
        converter,
        upload_time=override(rename="uploadTime"),
        proto_logs=override(rename="protoLogs", unstruct_hook=list),
        items=override(unstruct_hook=list),
    ),
)
converter.register_structure_hook(
    TelemetryRequest,
    make_dict_structure_fn(
        TelemetryRequest,
        converter,
        upload_time=override(rename="uploadTime"),
        proto_logs=override(rename="protoLogs"),
    ),
)
converter.register_structure_hook(
    records.ExportResponse,
    make_dict_structure_fn(
        records.ExportResponse,
        converter,
        num_proto_success=override(rename="numProtoSuccess"),
        num_success=override(rename="numSuccess"),
        num_realtime_success=override(rename="numRealtimeSuccess"),
        errors=override(struct_hook=lambda v, _: tuple(str(e) for e in (v or ()))),
    ),
)
converter.register_structure_hook(
    records.FeatureFlag,
    lambda v, _: records.FeatureFlag(name=str(v["name"]), value=str(v.get("value", ""))),
)
# The answers, for the local endpoint, the file sink and tests that play the service.
converter.register_unstructure_hook(
    records.ExportResponse,
    make_dict_unstructure_fn(
        records.ExportResponse,
        converter,
        num_proto_success=override(rename="numProtoSuccess"),
        num_success=override(rename="numSuccess"),
        num_realtime_success=override(rename="numRealtimeSuccess"),
        errors=override(unstruct_hook=list),
    ),
)
converter.register_unstructure_hook(
    records.FeatureFlagResponse,
    make_dict_unstructure_fn(
        records.FeatureFlagResponse,
        converter,
        flags=override(unstruct_hook=lambda flags: [converter.unstructure(f) for f in flags]),
        ttl_seconds=override(omit_if_default=True),
    ),
)

# Unstructured records hold no cycles, so the encoder's circular-reference bookkeeping is skipped.
_dumps = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode


def encode_request(proto_logs: Iterable[str], upload_time_ms: int) -> bytes:
    """Build a `TelemetryRequest` body (UTF-8 JSON) from already-encoded frontend logs."""
    request = TelemetryRequest(upload_time=upload_time_ms, proto_logs=tuple(proto_logs))
    return _dumps(converter.unstructure(request)).encode("utf-8")


def encode_export_response(response: records.ExportResponse) -> bytes:
    """The export endpoint's answer as the service sends it."""
    return _dumps(converter.unstructure(response)).encode("utf-8")


def encode_feature_flags(response: records.FeatureFlagResponse) -> bytes:
    """The feature-flag endpoint's answer as the service sends it (no TTL when None)."""
    return _dumps(converter.unstructure(response)).encode("utf-8")


def proto_log_bytes(proto_log: str) -> int:
    """What one encoded frontend log adds to a request body: its JSON string and a comma."""
    return len(escape_log(proto_log)) + 1


def escape_log(proto_log: str) -> bytes:
    """One encoded frontend log as it stands in a body's `protoLogs`: a JSON string, UTF-8."""
    return _dumps(proto_log).encode("utf-8")


def request_body(segments: Iterable[bytes], upload_time_ms: int) -> bytes:
    """`encode_request`'s bytes, joined from runs of logs already escaped (`escape_log`).

    Each segment is one or more escaped logs joined by commas, none empty. A body is then one
    join, however many batches share it, and no log is encoded twice.
    """
    return b'{"uploadTime":%d,"protoLogs":[%b],"items":[]}' % (
        upload_time_ms,
        b",".join(segments),
    )


def decode_request(body: bytes) -> TelemetryRequest:
    """Parse a `TelemetryRequest` body back (the file sink's input); raises `ValueError`."""
    value = _loads_object(body, "telemetry request")
    try:
        return converter.structure(value, TelemetryRequest)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"telemetry request: {exc}") from None


def _loads_object(body: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: valid JSON nested too deep
        raise ValueError(f"{what}: not JSON ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def decode_frontend_log(text: str) -> records.FrontendLog:
    """Parse one `protoLogs` string back into records (the inverse of `encode_frontend_log`)."""
    try:
        return converter.structure(_loads_object(text, "frontend log"), records.FrontendLog)
    except (cattrs.BaseValidationError, KeyError, TypeError) as exc:
        raise ValueError(f"frontend log: {exc}") from None


def decode_export_response(body: bytes) -> records.ExportResponse:
    """Parse the export endpoint's answer; raises `ValueError` when it is not one."""
    value = _loads_object(body, "export response")
    if not isinstance(value.get("numProtoSuccess"), int) or isinstance(
        value.get("numProtoSuccess"), bool
    ):
        raise ValueError("export response: numProtoSuccess missing or not an int")
    try:
        return converter.structure(value, records.ExportResponse)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"export response: {exc}") from None


def decode_feature_flags(body: bytes) -> records.FeatureFlagResponse:
    """Parse the feature-flag endpoint's answer; raises `ValueError` when it is not one."""
    value = _loads_object(body, "feature flags")
    try:
        return converter.structure(value, records.FeatureFlagResponse)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"feature flags: {exc}") from None


def flag_value(response: records.FeatureFlagResponse, name: str = TELEMETRY_FLAG_NAME) -> bool:
    """True only when the named flag is present and its value is "true" (any case)."""
    return any(f.name == name and f.value.strip().lower() == "true" for f in response.flags)
