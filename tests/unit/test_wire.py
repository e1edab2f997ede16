"""The wire format: golden shape from PROTOCOL.md, omission of unset fields, round trips."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages import records as r
from messages import wire
from messages.enums import (
    AuthMech,
    DriverMode,
    ExecutionResultFormat,
    OperationType,
    StatementType,
)

# The example of PROTOCOL.md §1 (request and one frontend log), with a typical statement entry.
GOLDEN_REQUEST = {"uploadTime": 1755000001000, "items": [], "protoLogs": ["<json string>"]}
GOLDEN_LOG = {
    "workspace_id": 1234567890123456,
    "frontend_log_event_id": "00000000-0000-4000-8000-000000000000",
    "context": {
        "client_context": {"timestamp_millis": 1755000000123, "user_agent": "MyDriver/1.2.3"}
    },
    "entry": {
        "sql_driver_log": {
            "session_id": "s-1",
            "sql_statement_id": "q-1",
            "operation_latency_ms": 42,
            "sql_operation": {
                "statement_type": "QUERY",
                "is_compressed": True,
                "execution_result": "INLINE_ARROW",
                "retry_count": 0,
                "chunk_details": {
                    "initial_chunk_latency_millis": 3,
                    "slowest_chunk_latency_millis": 5,
                    "total_chunks_present": 2,
                    "total_chunks_iterated": 2,
                    "sum_chunks_download_time_millis": 8,
                },
                "result_latency": {
                    "result_set_ready_latency_millis": 30,
                    "result_set_consumption_latency_millis": 12,
                },
                "operation_detail": {
                    "n_operation_status_calls": 1,
                    "operation_status_latency_millis": 4,
                    "operation_type": "EXECUTE_STATEMENT",
                },
            },
        }
    },
}


def _statement_log() -> r.FrontendLog:
    return r.FrontendLog(
        frontend_log_event_id="00000000-0000-4000-8000-000000000000",
        workspace_id=1234567890123456,
        context=r.FrontendLogContext(
            client_context=r.ClientContext(
                timestamp_millis=1755000000123, user_agent="MyDriver/1.2.3"
            )
        ),
        entry=r.FrontendLogEntry(
            sql_driver_log=r.SqlDriverLog(
                session_id="s-1",
                sql_statement_id="q-1",
                operation_latency_ms=42,
                sql_operation=r.SqlExecutionEvent(
                    statement_type=StatementType.QUERY,
                    is_compressed=True,
                    execution_result=ExecutionResultFormat.INLINE_ARROW,
                    retry_count=0,
                    chunk_details=r.ChunkDetails(
                        initial_chunk_latency_millis=3,
                        slowest_chunk_latency_millis=5,
                        total_chunks_present=2,
                        total_chunks_iterated=2,
                        sum_chunks_download_time_millis=8,
                    ),
                    result_latency=r.ResultLatency(
                        result_set_ready_latency_millis=30,
                        result_set_consumption_latency_millis=12,
                    ),
                    operation_detail=r.OperationDetail(
                        n_operation_status_calls=1,
                        operation_status_latency_millis=4,
                        operation_type=OperationType.EXECUTE_STATEMENT,
                    ),
                ),
            )
        ),
    )


def _shape(value: object) -> object:
    """Keys, nesting and value types (not values) of a JSON document."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_frontend_log_has_the_golden_keys_nesting_and_types() -> None:
    encoded = json.loads(wire.encode_frontend_log(_statement_log()))
    assert _shape(encoded) == _shape(GOLDEN_LOG)
    assert encoded == GOLDEN_LOG


def test_request_body_has_upload_time_empty_items_and_string_proto_logs() -> None:
    log = wire.encode_frontend_log(_statement_log())
    body = json.loads(wire.encode_request([log, log], upload_time_ms=1755000001000))
    assert _shape(body) == {"uploadTime": "int", "items": [], "protoLogs": ["str", "str"]}
    assert set(body) == set(GOLDEN_REQUEST)
    assert json.loads(body["protoLogs"][0]) == GOLDEN_LOG


def test_unset_fields_are_omitted_not_sent_as_null() -> None:
    log = r.FrontendLog(
        frontend_log_event_id="e",
        entry=r.FrontendLogEntry(sql_driver_log=r.SqlDriverLog(session_id="s")),
    )
    assert json.loads(wire.encode_frontend_log(log)) == {
        "frontend_log_event_id": "e",
        "entry": {"sql_driver_log": {"session_id": "s"}},
    }
    assert "null" not in wire.encode_frontend_log(log)


def test_enums_are_upper_case_strings() -> None:
    params = r.DriverConnectionParams(mode=DriverMode.THRIFT, auth_mech=AuthMech.PAT)
    log = r.FrontendLog(
        frontend_log_event_id="e",
        entry=r.FrontendLogEntry(sql_driver_log=r.SqlDriverLog(driver_connection_params=params)),
    )
    sent = json.loads(wire.encode_frontend_log(log))["entry"]["sql_driver_log"]
    assert sent["driver_connection_params"] == {"mode": "THRIFT", "auth_mech": "PAT"}


def test_frontend_log_round_trips_through_the_converter() -> None:
    log = _statement_log()
    assert wire.decode_frontend_log(wire.encode_frontend_log(log)) == log


_text = st.text(max_size=20)
_ms = st.none() | st.integers(min_value=0, max_value=2**53)


@given(
    session=st.none() | _text,
    statement=st.none() | _text,
    latency=_ms,
    stype=st.none() | st.sampled_from(StatementType),
    workspace=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    message=st.none() | st.text(max_size=200),
)
def test_any_record_round_trips(
    session: str | None,
    statement: str | None,
    latency: int | None,
    stype: StatementType | None,
    workspace: int | None,
    message: str | None,
) -> None:
    log = r.FrontendLog(
        frontend_log_event_id=str(uuid.uuid4()),
        workspace_id=workspace,
        entry=r.FrontendLogEntry(
            sql_driver_log=r.SqlDriverLog(
                session_id=session,
                sql_statement_id=statement,
                operation_latency_ms=latency,
                sql_operation=r.SqlExecutionEvent(statement_type=stype) if stype else None,
                error_info=r.DriverErrorInfo(error_name="E", stack_trace=message),
            )
        ),
    )
    assert wire.decode_frontend_log(wire.encode_frontend_log(log)) == log


def test_export_response_is_parsed() -> None:
    body = b'{"errors": ["bad"], "numSuccess": 0, "numProtoSuccess": 2, "numRealtimeSuccess": 0}'
    assert wire.decode_export_response(body) == r.ExportResponse(
        num_proto_success=2, errors=("bad",)
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"errors": []}',
        b'{"numProtoSuccess": "2"}',
        b'{"numProtoSuccess": true}',
    ],
)
def test_malformed_export_response_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        wire.decode_export_response(body)


def test_feature_flag_true_in_any_case_enables() -> None:
    body = json.dumps(
        {"flags": [{"name": wire.TELEMETRY_FLAG_NAME, "value": "TRUE"}], "ttl_seconds": 900}
    ).encode()
    response = wire.decode_feature_flags(body)
    assert response.ttl_seconds == 900
    assert wire.flag_value(response) is True


@pytest.mark.parametrize(
    "flags",
    [
        [],
        [{"name": wire.TELEMETRY_FLAG_NAME, "value": "false"}],
        [{"name": "other", "value": "true"}],
    ],
)
def test_feature_flag_missing_or_false_is_off(flags: list[dict[str, str]]) -> None:
    response = wire.decode_feature_flags(json.dumps({"flags": flags}).encode())
    assert wire.flag_value(response) is False


@pytest.mark.parametrize("body", [b"", b"[]", b'{"flags": 3}', b'{"flags": [{"value": "true"}]}'])
def test_malformed_feature_flag_answer_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        wire.decode_feature_flags(body)


def test_answers_encode_as_the_service_sends_them_and_decode_back() -> None:
    export = r.ExportResponse(num_proto_success=3, errors=("late",))
    assert json.loads(wire.encode_export_response(export)) == {
        "errors": ["late"],
        "numSuccess": 0,
        "numProtoSuccess": 3,
        "numRealtimeSuccess": 0,
    }
    assert wire.decode_export_response(wire.encode_export_response(export)) == export
    flag = r.FeatureFlag(name=wire.TELEMETRY_FLAG_NAME, value="true")
    flags = r.FeatureFlagResponse(flags=(flag,), ttl_seconds=900)
    assert json.loads(wire.encode_feature_flags(flags)) == {
        "flags": [{"name": wire.TELEMETRY_FLAG_NAME, "value": "true"}],
        "ttl_seconds": 900,
    }
    assert wire.decode_feature_flags(wire.encode_feature_flags(flags)) == flags
    assert json.loads(wire.encode_feature_flags(r.FeatureFlagResponse())) == {"flags": []}


def test_a_request_body_decodes_back_to_its_proto_logs() -> None:
    body = wire.encode_request(['{"a":"é"}', "{}"], 1_755_000_000_000)
    request = wire.decode_request(body)
    assert request.proto_logs == ('{"a":"é"}', "{}")
    assert request.upload_time == 1_755_000_000_000
    with pytest.raises(ValueError):
        wire.decode_request(b'{"protoLogs": []}')
    with pytest.raises(ValueError):
        wire.decode_request(b"[]")


@pytest.mark.parametrize("text", ['{"k":"plain"}', '{"k":"é\\u0000\\"\\n"}', '{"k":"日本"}'])
def test_proto_log_bytes_is_exactly_what_one_more_log_adds_to_a_body(text: str) -> None:
    one = wire.encode_request(["{}"], 1)
    two = wire.encode_request(["{}", text], 1)
    assert len(two) - len(one) == wire.proto_log_bytes(text)


@given(
    st.lists(st.lists(st.text(), min_size=1, max_size=4), max_size=4),
    st.integers(min_value=0, max_value=2**53),
)
def test_a_body_joined_from_escaped_runs_is_byte_for_byte_the_converters(
    runs: list[list[str]], upload_time_ms: int
) -> None:
    segments = [b",".join(wire.escape_log(text) for text in run) for run in runs]
    logs = [text for run in runs for text in run]
    assert wire.request_body(segments, upload_time_ms) == wire.encode_request(logs, upload_time_ms)


def test_the_local_endpoints_validator_stays_independent_of_the_clients_converter() -> None:
    # It is the oracle the converter is held to: sharing code would make the check circular.
    import ast
    import pathlib

    import actors.tools.local_endpoint.validate as validate

    tree = ast.parse(pathlib.Path(validate.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name and name.startswith(("messages", "actors"))}
