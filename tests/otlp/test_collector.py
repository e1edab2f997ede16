"""Through a real OpenTelemetry collector: what the library sends arrives intact at the far side.

The collector is `rotel` (its agent binary ships inside the `rotel` wheel): an OTLP/HTTP receiver
on a free loopback port, exporting OTLP/HTTP protobuf to a loopback sink of ours that decodes with
`opentelemetry-proto`. Without the binary the tests skip, unless `CI` is set: then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from _otlp_receiver import OtlpReceiver
from _otlp_workload import DRIVER, HTTP_PATH, LITERAL, SECRET, Told, run_connection
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from servers import free_port
from waiting import poll_until

import actors
from messages.otlp import LOGS_REQUEST, OtlpResource, ServerAddress, encode, logs_request
from messages.otlp.metrics import DURATION_BOUNDS_S

WAIT_S = 10.0
HOST = "warehouse.example.com"
TOKEN = "driver-secret-token"


def bearer_auth() -> dict[str, str]:
    """The connection's own credentials (the collector must never see them)."""
    return {"Authorization": f"Bearer {TOKEN}"}


def collector_binary() -> pathlib.Path | None:
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        return None
    binary = pathlib.Path(spec.origin).parent / "rotel-agent"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


class CollectorUnavailable(Exception):
    """The collector binary is there but exited at once (its reason is the message)."""


def unavailable(message: str) -> None:
    """Skip, or fail when `CI` is set: the collector-backed tests must run in CI."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Collector:
    """A running collector: its OTLP/HTTP URL and the sink it forwards to."""

    def __init__(self, binary: pathlib.Path, sink: OtlpReceiver, workdir: pathlib.Path) -> None:
        self.sink = sink
        self.http_port, grpc_port = free_port(), free_port()
        self.log_file = workdir / "rotel.log"
        command = [
            str(binary),
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            sink.url,
            "--otlp-exporter-protocol",
            "http",
            "--pid-file",
            str(workdir / "rotel.pid"),
            "--log-file",
            str(self.log_file),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir
        )
        poll_until(
            lambda: self.process.poll() is not None or listening(self.http_port),
            WAIT_S,
            "the collector to listen",
        )
        if self.process.poll() is not None:  # e.g. no libpython for this interpreter's wheel
            _, stderr = self.process.communicate(timeout=5.0)
            raise CollectorUnavailable(stderr.decode("utf-8", "replace").strip()[-300:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=5.0)


@pytest.fixture
def collector(tmp_path: pathlib.Path) -> Iterator[Collector]:
    binary = collector_binary()
    if binary is None:
        unavailable("the rotel collector binary is not installed (pip install rotel)")
        return
    sink = OtlpReceiver()
    try:
        running = Collector(binary, sink, tmp_path)
    except CollectorUnavailable as exc:
        sink.stop()
        unavailable(f"the rotel collector does not start here: {exc}")
        return
    yield running
    running.stop()
    sink.stop()


def settings_for(collector: Collector, **overrides: Any) -> actors.TelemetrySettings:
    values: dict[str, Any] = {
        "sink": "otlp",
        "otlp_endpoint": collector.url,
        "otlp_service_name": "billing",
        "otlp_resource_attributes": "deployment.environment.name=test,team=db%20tools",
        "flush_interval_ms": 50,
        "shutdown_timeout_ms": 3000,
    }
    values.update(overrides)
    return actors.TelemetrySettings(**values)


def drive(settings: actors.TelemetrySettings, sessions: int = 2) -> tuple[Told, dict[str, Any]]:
    told = Told()
    for n in range(sessions):
        telemetry = actors.connect(HOST, settings=settings, driver=DRIVER, auth=bearer_auth)
        run_connection(telemetry, f"s{n}", told)
        telemetry.close()
    actors.shutdown(5.0)
    (entry,) = actors.dump_state()["hosts"].values()
    return told, dict(entry["accounting"])


def attributes(record: Any) -> dict[str, Any]:
    found = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        found[kv.key] = getattr(kv.value, kind)
    return found


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_driver_logs_arrive_through_the_collector_with_their_attributes(
    collector: Collector, protocol: str
) -> None:
    told, accounting = drive(settings_for(collector, otlp_protocol=protocol))

    assert accounting["exported"] == told.events, accounting
    records = poll_until(
        lambda: (found := collector.sink.log_records()) and len(found) >= told.logs and found,
        WAIT_S,
        f"{told.logs} log records at the sink",
    )
    assert len(records) == told.logs
    resource, scope, _ = records[0]
    resource_attributes = attributes(resource)
    assert resource_attributes["service.name"] == "billing"
    assert resource_attributes["team"] == "db tools"
    assert resource_attributes["telemetry.sdk.language"] == "python"
    assert resource_attributes["process.runtime.name"] == "cpython"
    assert (scope.name, scope.version) == (DRIVER.name, DRIVER.version)
    by_statement = {attributes(r).get("databricks.statement_id"): r for _r, _s, r in records}
    assert set(told.statements) <= set(by_statement)
    for statement in told.statements:
        record = by_statement[statement]
        seen = attributes(record)
        assert seen["db.system.name"] == "databricks"
        assert seen["db.operation.name"] == "EXECUTE_STATEMENT"
        assert seen["db.namespace"] == HTTP_PATH  # from its session's connection log
        assert seen["server.address"] == HOST
        assert seen["databricks.sql_operation.execution_result"] == "INLINE_ARROW"
        assert record.severity_text == "INFO"
        assert record.time_unix_nano > 1_600_000_000 * 10**9
    errors = [r for _r, _s, r in records if r.event_name == "db.client.operation.exception"]
    assert sorted(attributes(e)["databricks.statement_id"] for e in errors) == told.errors
    for error in errors:
        assert error.severity_number == 13 and error.severity_text == "WARN"
        seen = attributes(error)
        assert seen["error.type"] == "OperationalError"
        assert seen["db.response.status_code"] == "SQLITE_ERROR"  # the driver's own code
        message = seen["exception.message"]
        assert SECRET not in message and LITERAL not in message
        assert "syntax error" in message
    for request in collector.sink.requests():
        assert TOKEN.encode() not in request.body + repr(request.headers).encode()


def test_duration_histogram_and_counters_arrive_through_the_collector(
    collector: Collector,
) -> None:
    told, accounting = drive(settings_for(collector), sessions=1)

    def metrics() -> list[Any]:
        found = []
        for request in collector.sink.requests("metrics"):
            message = request.decoded()
            for rm in message.resource_metrics:  # type: ignore[attr-defined]
                for sm in rm.scope_metrics:
                    found += list(sm.metrics)
        return found

    def final_duration() -> Any:
        points = [
            p
            for m in metrics()
            if m.name == "db.client.operation.duration"
            for p in m.histogram.data_points
            if attributes(p).get("db.operation.name") == "EXECUTE_STATEMENT"
        ]
        top = max((p.count for p in points), default=0)
        return points if top == len(told.statements) else None

    points = poll_until(final_duration, WAIT_S, "the final duration histogram")
    point = max(points, key=lambda p: p.count)
    assert list(point.explicit_bounds) == list(DURATION_BOUNDS_S)
    assert sum(point.bucket_counts) == point.count == len(told.statements)
    assert 0.02 <= point.max <= point.sum  # the last statement took 40 ms and more
    assert attributes(point)["server.address"] == HOST
    exported = [
        p.as_int
        for m in metrics()
        if m.name == "driver_telemetry.events.exported"
        for p in m.sum.data_points
    ]
    # The library's own accounts, as the exporter settled them: the last request has them all.
    assert max(exported) == accounting["exported"] == told.events
    assert not [m for m in metrics() if m.name == "driver_telemetry.events.dropped"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_an_encoded_request_arrives_at_the_far_side_exactly(
    collector: Collector, protocol: str
) -> None:
    """Byte-level: the request the sink decodes equals the request we encoded."""
    import urllib.request

    from messages.records import (
        ClientContext,
        DriverErrorInfo,
        FrontendLog,
        FrontendLogContext,
        FrontendLogEntry,
        SqlDriverLog,
    )
    from messages.sysconfig import system_configuration

    logs = [
        FrontendLog(
            frontend_log_event_id=f"id-{n}",
            context=FrontendLogContext(
                client_context=ClientContext(timestamp_millis=1_700_000_000_000 + n)
            ),
            entry=FrontendLogEntry(
                sql_driver_log=SqlDriverLog(
                    session_id="s",
                    system_configuration=system_configuration(DRIVER),
                    operation_latency_ms=2**40 + n,
                    error_info=DriverErrorInfo(error_name="E", stack_trace="é ✓ <redacted>")
                    if n % 2
                    else None,
                )
            ),
            workspace_id=2**62 + n,
        )
        for n in range(4)
    ]
    message = logs_request(
        logs,
        resource=OtlpResource(service_name="exact"),
        server=ServerAddress(host=HOST, port=443),
        observed_ns=1_800_000_000_000_000_000,
    )
    body = encode(message, LOGS_REQUEST, protocol)
    content_type = "application/json" if protocol == "http/json" else "application/x-protobuf"
    request = urllib.request.Request(
        collector.url + "/v1/logs", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=5.0) as answer:
        assert answer.status == 200
    poll_until(lambda: collector.sink.requests("logs"), WAIT_S, "the forwarded request")

    (arrived,) = [r.decoded() for r in collector.sink.requests("logs")]
    if protocol == "http/json":
        sent = json_format.Parse(body, logs_service_pb2.ExportLogsServiceRequest())
    else:
        sent = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    assert arrived == sent
