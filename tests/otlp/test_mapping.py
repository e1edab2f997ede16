"""Frontend logs to OTLP LogRecords and resources; the OTLP settings from OTEL_* variables."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

import actors
from actors._export.http import HttpOutcome
from actors._export.otlp import OtlpTransport
from messages.commands import BatchSettled
from messages.config import TelemetrySettings
from messages.enums import OperationType, StatementType
from messages.otlp import LOGS_REQUEST, OtlpResource, ServerAddress, encode
from messages.otlp.mapping import (
    MAX_SESSIONS,
    log_record,
    logs_request,
    remember_namespaces,
    resource_attributes,
)
from messages.otlp.options import parse_headers, parse_resource_attributes, signal_url
from messages.privacy import strip_for_unauth
from messages.records import (
    ClientContext,
    DriverConnectionParams,
    DriverErrorInfo,
    FrontendLog,
    FrontendLogContext,
    FrontendLogEntry,
    OperationDetail,
    SqlDriverLog,
    SqlExecutionEvent,
)
from messages.sysconfig import system_configuration
from messages.wire import encode_frontend_log, encode_request

DRIVER = actors.DriverInfo(name="MapDriver", version="1.0", client_app_name="app")
SERVER = ServerAddress(host="db.example.com", port=443)


def frontend(log: SqlDriverLog) -> FrontendLog:
    return FrontendLog(
        frontend_log_event_id="e-1",
        context=FrontendLogContext(client_context=ClientContext(timestamp_millis=1_000)),
        entry=FrontendLogEntry(sql_driver_log=log),
    )


def attributes_of(record: dict[str, Any]) -> dict[str, Any]:
    """A LogRecord's attributes, as opentelemetry-proto decodes them from our protobuf."""
    tree = {"resource_logs": [{"scope_logs": [{"log_records": [record]}]}]}
    request = logs_service_pb2.ExportLogsServiceRequest.FromString(
        encode(tree, LOGS_REQUEST, "http/protobuf")
    )
    (decoded,) = request.resource_logs[0].scope_logs[0].log_records
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in decoded.attributes}


def statement(error: DriverErrorInfo | None = None, operation: Any = None) -> SqlDriverLog:
    return SqlDriverLog(
        session_id="s",
        sql_statement_id="q",
        operation_latency_ms=12,
        sql_operation=SqlExecutionEvent(
            statement_type=StatementType.QUERY,
            operation_detail=OperationDetail(
                operation_type=operation or OperationType.EXECUTE_STATEMENT
            ),
        ),
        error_info=error,
    )


def test_a_statement_log_carries_the_database_client_conventions() -> None:
    record = log_record(frontend(statement()), server=SERVER, observed_ns=5)
    seen = attributes_of(record)

    assert record["severity_number"] == 9 and record["event_name"] == "databricks.driver.statement"
    assert record["time_unix_nano"] == 1_000_000_000
    assert seen["db.system.name"] == "databricks"
    assert seen["db.operation.name"] == "EXECUTE_STATEMENT"
    assert (seen["server.address"], seen["server.port"]) == ("db.example.com", 443)
    assert seen["databricks.sql_operation.statement_type"] == "QUERY"
    assert "error.type" not in seen and "db.query.text" not in seen


def test_an_error_is_an_exception_event_at_warn() -> None:
    error = DriverErrorInfo(error_name="OperationalError", stack_trace="near '<redacted>'")
    record = log_record(frontend(statement(error)), server=None, observed_ns=5)
    seen = attributes_of(record)

    assert record["event_name"] == "db.client.operation.exception"
    assert (record["severity_number"], record["severity_text"]) == (13, "WARN")
    assert seen["error.type"] == seen["exception.type"] == "OperationalError"
    assert seen["exception.message"] == record["body"]["string_value"] == "near '<redacted>'"
    assert "server.address" not in seen


def test_an_error_without_a_name_has_the_conventional_other_type() -> None:
    record = log_record(frontend(statement(DriverErrorInfo())), server=None, observed_ns=5)

    assert attributes_of(record)["error.type"] == "_OTHER"


def test_connection_and_close_logs_are_told_apart() -> None:
    connection = SqlDriverLog(
        session_id="s",
        auth_type="pat",
        driver_connection_params=DriverConnectionParams(
            http_path="/sql/1.0/warehouses/abc", enable_arrow=True
        ),
    )
    close = statement(operation=OperationType.DELETE_SESSION)

    opened = log_record(frontend(connection), server=SERVER, observed_ns=1)
    closed = log_record(frontend(close), server=SERVER, observed_ns=1)

    assert opened["event_name"] == "databricks.driver.connection"
    assert attributes_of(opened)["db.operation.name"] == "CREATE_SESSION"
    assert attributes_of(opened)["databricks.connection.enable_arrow"] is True
    assert closed["event_name"] == "databricks.driver.close"


def test_an_unauthenticated_log_loses_its_ids_on_otlp_too() -> None:
    log = frontend(statement())
    record = log_record(strip_for_unauth(log), server=None, observed_ns=1)

    assert "databricks.session_id" not in attributes_of(record)
    assert "databricks.statement_id" not in attributes_of(record)


def test_resource_comes_from_the_system_configuration_and_operator_settings() -> None:
    system = system_configuration(DRIVER)
    plain = dict(resource_attributes(system, OtlpResource()))
    custom = dict(
        resource_attributes(
            system,
            OtlpResource(
                service_name="billing",
                attributes=(("service.name", "ignored"), ("os.type", "override"), ("team", "x")),
            ),
        )
    )

    assert plain["service.name"] == "app"  # the driver's client_app_name
    assert plain["telemetry.sdk.name"] == "driver-telemetry"
    assert plain["process.runtime.name"] == "cpython"
    assert plain["os.type"] == system.os_name.lower()  # type: ignore[union-attr]
    assert custom["service.name"] == "billing"  # OTEL_SERVICE_NAME beats the attribute list
    assert (custom["os.type"], custom["team"]) == ("override", "x")


def test_otel_variables_configure_the_sink_below_our_own_settings() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9/custom",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_SERVICE_NAME": "from-otel",
        "DATABRICKS_TELEMETRY_OTLP_SERVICE_NAME": "from-ours",
    }

    settings = TelemetrySettings.from_sources({"telemetry.otlp.timeout_ms": "700"}, environ)

    assert settings.otlp_endpoint == "http://collector:4318/"
    assert signal_url(settings.otlp_endpoint, "logs", settings.otlp_logs_endpoint) == (
        "http://collector:4318/v1/logs"
    )
    assert signal_url(settings.otlp_endpoint, "metrics", settings.otlp_metrics_endpoint) == (
        "http://metrics:9/custom"
    )
    assert (settings.otlp_protocol, settings.otlp_compression) == ("http/json", "gzip")
    assert settings.otlp_timeout_ms == 700  # the property wins
    assert settings.otlp_service_name == "from-ours"  # our variable wins over OTEL_*


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
    ],
)
def test_an_invalid_otel_variable_falls_back_to_the_default(name: str, value: str) -> None:
    assert TelemetrySettings.from_sources({}, {name: value}) == TelemetrySettings()


def test_headers_are_percent_decoded_and_kept_out_of_repr() -> None:
    assert parse_headers("api-key=a%3Db%2Cc , x=1") == (("api-key", "a=b,c"), ("x", "1"))
    assert parse_resource_attributes("k=v%20w") == (("k", "v w"),)
    settings = TelemetrySettings(otlp_headers="api-key=hunter2")
    assert "hunter2" not in repr(settings)
    with pytest.raises(ValueError, match="HTTP token"):
        parse_headers("bad name=x")
    with pytest.raises(ValueError, match="line break"):
        parse_headers("x=a%0D%0Ainjected: 1")


def test_the_flag_is_answered_locally_and_no_driver_header_is_forwarded() -> None:
    sent: list[Any] = []

    class Inner:
        def request(self, method: str, url: str, **kwargs: Any) -> Any:
            sent.append((method, url, kwargs["headers"]))
            return HttpOutcome(status=200)

    transport = OtlpTransport(TelemetrySettings(sink="otlp"), inner=Inner())
    flag = transport.request("GET", "https://h/flags", body=None, headers={})
    body = encode_request([encode_frontend_log(frontend(statement()))], 1)
    outcome = transport.request(
        "POST", "https://h/telemetry-ext", body=body, headers={"Authorization": "Bearer t"}
    )
    transport.settled(BatchSettled(batch_id=1, exported_events=1, exported_logs=1, dropped={}))

    assert flag.ok and b"true" in flag.body
    assert outcome.ok and b'"numProtoSuccess": 1' in outcome.body
    methods_urls = [(m, u) for m, u, _ in sent]
    assert methods_urls == [
        ("POST", "http://localhost:4318/v1/logs"),
        ("POST", "http://localhost:4318/v1/metrics"),
    ]
    assert all("Authorization" not in headers for _, _, headers in sent)


def test_a_close_log_shares_its_connection_resource() -> None:
    system = system_configuration(DRIVER)
    opened = frontend(SqlDriverLog(session_id="s", system_configuration=system, auth_type="pat"))
    closed = frontend(statement(operation=OperationType.DELETE_SESSION))

    request = logs_request([opened, closed], resource=OtlpResource(), server=SERVER, observed_ns=1)

    (resource_logs,) = request["resource_logs"]
    assert len(resource_logs["scope_logs"][0]["log_records"]) == 2
    assert dict(resource_logs["resource"]["attributes"])["service.name"] == "app"


def test_an_error_with_a_sqlstate_carries_it_as_the_response_status_code() -> None:
    error = DriverErrorInfo(error_name="ProgrammingError", stack_trace="[42P01] no such table")
    record = log_record(frontend(statement(error=error)), server=SERVER, observed_ns=1)

    assert attributes_of(record)["db.response.status_code"] == "42P01"


def test_an_error_without_a_code_and_a_statement_have_no_response_status_code() -> None:
    error = DriverErrorInfo(error_name="ProgrammingError", stack_trace="no such table")
    bare = log_record(frontend(statement(error=error)), server=SERVER, observed_ns=1)
    ok = log_record(frontend(statement()), server=SERVER, observed_ns=1)
    odd = DriverErrorInfo(error_name="E", stack_trace="[not a code] x")
    spaced = log_record(frontend(statement(error=odd)), server=SERVER, observed_ns=1)

    for record in (bare, ok, spaced):
        assert "db.response.status_code" not in attributes_of(record)


def test_a_sessions_http_path_is_the_namespace_of_its_later_logs_too() -> None:
    params = DriverConnectionParams(http_path="/sql/1.0/warehouses/w1")
    opened = frontend(SqlDriverLog(session_id="s", driver_connection_params=params))
    later = frontend(statement())  # session "s", no connection params of its own
    stranger = frontend(SqlDriverLog(session_id="other", sql_statement_id="q"))
    seen: dict[str, str] = {}

    remember_namespaces([opened], seen)
    records = [
        log_record(log, server=SERVER, observed_ns=1, namespaces=seen)
        for log in (opened, later, stranger)
    ]

    namespaces = [attributes_of(r).get("db.namespace") for r in records]
    assert namespaces == ["/sql/1.0/warehouses/w1", "/sql/1.0/warehouses/w1", None]


def test_the_namespaces_remembered_are_bounded_oldest_first() -> None:
    seen: dict[str, str] = {}
    logs = [
        frontend(
            SqlDriverLog(
                session_id=f"s{n}", driver_connection_params=DriverConnectionParams(http_path="/p")
            )
        )
        for n in range(MAX_SESSIONS + 5)
    ]

    remember_namespaces(logs, seen)

    assert len(seen) == MAX_SESSIONS and "s0" not in seen and f"s{MAX_SESSIONS + 4}" in seen
