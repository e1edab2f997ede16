"""Server-side oracle for the `TelemetryRequest` wire format (PROTOCOL.md §1-2).

Written independently of the client's converter on purpose: it is what the tests hold that
converter to. Strict where the protocol is explicit (unknown keys, nulls, bools posing as ints,
UPPER_CASE enums, non-negative counts and latencies) and permissive only for the long tail of
`driver_connection_params` fields, which drivers fill in differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MAX_BODY_BYTES = 1 << 20
MAX_PROTO_LOGS = 1000
MAX_PROTO_LOG_BYTES = 64 * 1024
MAX_DEPTH = 16
MIN_EPOCH_MS = 10**12  # 2001-09-09: anything smaller is seconds, not milliseconds
MAX_EPOCH_MS = 10**14  # year 5138: anything larger is micro- or nanoseconds
INT64_MAX = 2**63 - 1

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class WireError(Exception):
    """A request body that breaks the wire format; `reason` says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Check = Callable[[object, str], None]


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: object) -> str:
    names = {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }
    return names.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expect(where: str, wanted: str, value: object) -> WireError:
    return WireError(f"{where}: expected {wanted}, got {_kind(value)}")


def _string(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise _expect(where, "string", value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WireError(f"{where}: string holds a lone surrogate") from None


def _boolean(value: object, where: str) -> None:
    if not isinstance(value, bool):
        raise _expect(where, "boolean", value)


def _integer(minimum: int = 0, maximum: int = INT64_MAX, meaning: str = "") -> Check:
    bounds = meaning or (
        f"must be >= {minimum}" if maximum == INT64_MAX else f"must be within {minimum}..{maximum}"
    )

    def check(value: object, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expect(where, "integer", value)
        if not minimum <= value <= maximum:
            raise WireError(f"{where}: {bounds}, got {_short(value)}")

    return check


_count = _integer()
_epoch_ms = _integer(MIN_EPOCH_MS, MAX_EPOCH_MS, "must be epoch milliseconds (10^12..10^14)")


def _uuid(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise _expect(where, "string", value)
    if not _UUID.fullmatch(value):
        raise WireError(f"{where}: {_short(value)} is not a UUID")


def _enum(*names: str) -> Check:
    allowed = frozenset(names)

    def check(value: object, where: str) -> None:
        _string(value, where)
        if value not in allowed:
            raise WireError(
                f"{where}: unknown enum value {_short(value)} (expected one of {', '.join(names)})"
            )

    return check


def _any(value: object, where: str) -> None:
    """Accept any JSON value without nulls (depth is already bounded by `_parse`)."""
    if value is None:
        raise WireError(f"{where}: null is not allowed (omit unset fields)")
    if isinstance(value, str):
        _string(value, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _any(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _string(key, _at(where, key))
            _any(item, _at(where, key))


def _empty_array(value: object, where: str) -> None:
    if not isinstance(value, list) or value:
        raise WireError(f"{where}: must be [] (got {_short(value)})")


def _bounded_array(value: object, where: str) -> None:
    if not isinstance(value, list):
        raise _expect(where, "array", value)
    if len(value) > MAX_PROTO_LOGS:
        raise WireError(f"{where}: {len(value)} entries exceed the limit of {MAX_PROTO_LOGS}")


def _object(
    fields: Mapping[str, Check],
    *,
    required: Iterable[str] = (),
    extra: Iterable[str] = (),
    non_empty: bool = False,
) -> Check:
    """Check an object: known `fields` type-checked, `extra` names accepted as any value."""
    needed = tuple(required)
    permitted = frozenset(extra)

    def check(value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise _expect(where or "body", "object", value)
        for key, item in value.items():
            here = _at(where, key)
            if key not in fields and key not in permitted:
                raise WireError(f"{here}: unknown field")
            if item is None:
                raise WireError(f"{here}: null is not allowed (omit unset fields)")
        for key in needed:
            if key not in value:
                raise WireError(f"{_at(where, key)}: missing required field")
        if non_empty and not value:
            raise WireError(f"{where}: empty object")
        for key, item in value.items():
            (fields.get(key) or _any)(item, _at(where, key))

    return check


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _all(check: Check, names: str) -> dict[str, Check]:
    return dict.fromkeys(_words(names), check)


OPERATION_TYPES = _words(
    "TYPE_UNSPECIFIED CREATE_SESSION DELETE_SESSION EXECUTE_STATEMENT EXECUTE_STATEMENT_ASYNC "
    "CLOSE_STATEMENT CANCEL_STATEMENT LIST_TYPE_INFO LIST_CATALOGS LIST_SCHEMAS LIST_TABLES "
    "LIST_TABLE_TYPES LIST_COLUMNS LIST_FUNCTIONS LIST_PRIMARY_KEYS LIST_IMPORTED_KEYS "
    "LIST_EXPORTED_KEYS LIST_CROSS_REFERENCES"
)

_HOST_INFO = _object({"host_url": _string, "port": _integer(0, 65535)})

_SYSTEM_CONFIGURATION = _object(
    _all(
        _string,
        "driver_name driver_version runtime_name runtime_version runtime_vendor os_name "
        "os_version os_arch client_app_name locale_name char_set_encoding process_name",
    )
)

# DriverConnectionParameters proto fields beyond the PROTOCOL.md list. Drivers disagree on their
# types (JDBC sends non_proxy_hosts as a list, ADBC some ints as strings): any non-null value.
CONNECTION_PARAMS_ALLOW_LIST = frozenset(
    _words(
        "auth_scope discovery_mode_enabled discovery_url identity_federation_client_id "
        "use_empty_metadata support_many_parameters ssl_trust_store_type "
        "check_certificate_revocation accept_undetermined_certificate_revocation "
        "enable_jwt_assertion jwt_key_file jwt_algorithm google_service_account "
        "google_credential_file_path allowed_volume_ingestion_paths "
        "enable_complex_datatype_support azure_workspace_resource_id azure_tenant_id "
        "string_column_length enable_token_cache auth_endpoint token_endpoint non_proxy_hosts "
        "enable_sea_hybrid_results query_tags auto_commit enable_metric_view_metadata"
    )
)

_CONNECTION_PARAMS = _object(
    {
        "http_path": _string,
        "mode": _enum("THRIFT", "SEA"),
        "host_info": _HOST_INFO,
        "proxy_host_info": _HOST_INFO,
        "cf_proxy_host_info": _HOST_INFO,
        "auth_mech": _enum("PAT", "OAUTH", "OTHER"),
        "auth_flow": _enum(
            "TOKEN_PASSTHROUGH", "CLIENT_CREDENTIALS", "BROWSER_BASED_AUTHENTICATION"
        ),
        **_all(
            _boolean,
            "use_proxy use_system_proxy use_cf_proxy allow_self_signed_support "
            "use_system_trust_store enable_arrow enable_direct_results",
        ),
        **_all(
            _count,
            "rows_fetched_per_block socket_timeout async_poll_interval_millis "
            "http_connection_pool_size",
        ),
    },
    extra=CONNECTION_PARAMS_ALLOW_LIST,
)

_SQL_OPERATION = _object(
    {
        "statement_type": _enum(*_words("TYPE_UNSPECIFIED QUERY SQL UPDATE METADATA VOLUME")),
        "is_compressed": _boolean,
        "execution_result": _enum(
            *_words("FORMAT_UNSPECIFIED INLINE_ARROW INLINE_JSON EXTERNAL_LINKS COLUMNAR_INLINE")
        ),
        "retry_count": _count,
        "chunk_id": _count,
        "chunk_details": _object(
            _all(
                _count,
                "initial_chunk_latency_millis slowest_chunk_latency_millis total_chunks_present "
                "total_chunks_iterated sum_chunks_download_time_millis",
            )
        ),
        "result_latency": _object(
            _all(_count, "result_set_ready_latency_millis result_set_consumption_latency_millis")
        ),
        "operation_detail": _object(
            {
                **_all(_count, "n_operation_status_calls operation_status_latency_millis"),
                "operation_type": _enum(*OPERATION_TYPES),
                "is_internal_call": _boolean,
            }
        ),
    }
)

# vol_operation is named but not detailed in PROTOCOL.md; its fields follow the drivers' models.
_VOL_OPERATION = _object(
    {
        "volume_operation_type": _enum(*_words("TYPE_UNSPECIFIED PUT GET DELETE LIST QUERY")),
        "volume_path": _string,
    }
)

_SQL_DRIVER_LOG = _object(
    {
        "session_id": _string,
        "sql_statement_id": _string,
        "system_configuration": _SYSTEM_CONFIGURATION,
        "driver_connection_params": _CONNECTION_PARAMS,
        "auth_type": _string,
        "vol_operation": _VOL_OPERATION,
        "sql_operation": _SQL_OPERATION,
        "error_info": _object(
            {"error_name": _string, "stack_trace": _string}, required=("error_name",)
        ),
        "operation_latency_ms": _count,
    },
    non_empty=True,
)

_FRONTEND_LOG = _object(
    {
        "workspace_id": _count,
        "frontend_log_event_id": _uuid,
        "context": _object(
            {
                "client_context": _object(
                    {"timestamp_millis": _epoch_ms, "user_agent": _string},
                    required=("timestamp_millis", "user_agent"),
                )
            },
            required=("client_context",),
        ),
        "entry": _object({"sql_driver_log": _SQL_DRIVER_LOG}, required=("sql_driver_log",)),
    },
    required=("frontend_log_event_id", "context", "entry"),
)


_REQUEST = _object(
    {"uploadTime": _epoch_ms, "items": _empty_array, "protoLogs": _bounded_array},
    required=("uploadTime", "items", "protoLogs"),
)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise WireError(f"duplicate key {_short(key)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise WireError(f"{name} is not valid JSON")


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            stack.extend(
                (child, level + 1) for child in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def _parse(text: str, where: str) -> object:
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        )
    except WireError as error:
        raise WireError(f"{where}: {error.reason}") from None
    except RecursionError:
        raise WireError(f"{where}: nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise WireError(f"{where}: not valid JSON ({error})") from None
    if _depth(value) > MAX_DEPTH:
        raise WireError(f"{where}: nesting deeper than {MAX_DEPTH} levels")
    return value


def _frontend_log(text: object, index: int) -> dict[str, Any]:
    where = f"protoLogs[{index}]"
    if not isinstance(text, str):
        raise _expect(where, "a JSON-serialised string", text)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROTO_LOG_BYTES:
        raise WireError(f"{where}: longer than {MAX_PROTO_LOG_BYTES} bytes")
    log = _parse(text, where)
    if not isinstance(log, dict):
        raise _expect(where, "a JSON object string", log)
    try:
        _FRONTEND_LOG(log, "")
    except WireError as error:
        raise WireError(f"{where}: {error.reason}") from None
    return log


def validate_request(body: bytes, max_body_bytes: int = MAX_BODY_BYTES) -> list[dict[str, Any]]:
    """Return the decoded frontend logs of a `TelemetryRequest` body, or raise `WireError`."""
    if len(body) > max_body_bytes:
        raise WireError(f"body: {len(body)} bytes exceeds the limit of {max_body_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError(f"body: invalid UTF-8 at byte {error.start}") from None
    request = _parse(text, "body")
    if not isinstance(request, dict):
        raise _expect("body", "object", request)
    _REQUEST(request, "")
    return [_frontend_log(text, index) for index, text in enumerate(request["protoLogs"])]
