"""Item 5: the same two figures for two peers, measured in this run on this machine.

- databricks-sql-connector: its real `log_latency` decorator around a no-op cursor method,
  feeding its real `TelemetryClient` (host-shared, batch 100, dataclass `to_json` serialisation
  and the HTTP POST on its thread pool) pointed at the same loopback endpoint. Its decorator
  reads telemetry facts off a cursor object; a small stand-in named `Cursor` provides them. One
  call is one event (one latency log).
- OpenTelemetry SDK: `Logger.emit` with a body and two attributes into a
  `BatchLogRecordProcessor` with a no-op exporter (defaults: queue 2048, batch 512).

Driver-thread cost per event is timed per call, like ours (for the connector: the decorated call
minus the same undecorated call). Events/s is a back-to-back loop of `events` calls, divided
by the time until its pipeline has taken every one (the endpoint acknowledged them, or the
exporter was handed them), with drops counted.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import statistics
import time
from typing import Any

from _common import TOKEN, pc_ns, percentile, quiet_gc, timer_overhead_ns, wait_until
from _endpoint import EndpointProcess

SESSION_HEX = "01f0a5b2c3d4e5f60718293a4b5c6d7e"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _per_call(call: Any, count: int, overhead_ns: float) -> list[float]:
    out = [0] * count
    with quiet_gc():
        for i in range(count):
            t0 = pc_ns()
            call()
            out[i] = pc_ns() - t0
    out.sort()
    return [
        max(0.0, percentile(out, 0.5) - overhead_ns) / 1000,
        max(0.0, percentile(out, 0.99) - overhead_ns) / 1000,
        max(0.0, sum(out) / count - overhead_ns) / 1000,
    ]


# --- databricks-sql-connector -------------------------------------------------------------------


def _databricks(endpoint: EndpointProcess, events: int, repeats: int) -> dict[str, Any]:
    from databricks.sql.auth.authenticators import AccessTokenAuthProvider
    from databricks.sql.auth.common import ClientContext
    from databricks.sql.telemetry.latency_logger import log_latency
    from databricks.sql.telemetry.models.enums import DatabricksClientType, StatementType
    from databricks.sql.telemetry.models.event import DriverConnectionParameters, HostDetails
    from databricks.sql.telemetry.telemetry_client import TelemetryClientFactory

    url = endpoint.url
    TelemetryClientFactory.initialize_telemetry_client(
        telemetry_enabled=True,
        session_id_hex=SESSION_HEX,
        auth_provider=AccessTokenAuthProvider(TOKEN),
        host_url=url,
        batch_size=TelemetryClientFactory.DEFAULT_BATCH_SIZE,
        client_context=ClientContext(hostname=url, access_token=TOKEN),
    )
    # What the connector's connect() does next: the connection log, which also sets the user
    # agent every later log carries.
    TelemetryClientFactory.get_telemetry_client(url).export_initial_telemetry_log(
        driver_connection_params=DriverConnectionParameters(
            http_path="/sql/1.0/warehouses/bench",
            mode=DatabricksClientType.THRIFT,
            host_info=HostDetails(host_url=url, port=443),
        ),
        user_agent=f"PyDatabricksSqlConnector/{_version('databricks-sql-connector')}",
        session_id=SESSION_HEX,
    )

    class Session:
        host = url

    class Connection:
        telemetry_enabled = True
        lz4_compression = False
        session = Session()

        def get_session_id_hex(self) -> str:
            return SESSION_HEX

    class Cursor:  # the decorator extracts facts from objects of this class name
        def __init__(self) -> None:
            self.connection = Connection()
            self.query_id = "01f0a5b2-c3d4-e5f6-0718-293a4b5c6d7e"
            self.active_result_set = None
            self.backend = None

        @log_latency(StatementType.QUERY)
        def execute(self) -> None:
            return None

        def plain(self) -> None:
            return None

    cursor = Cursor()
    client = TelemetryClientFactory.get_telemetry_client(url)
    sent = 1  # the connection log

    def settled(total: int) -> bool:
        client._flush()
        return bool(wait_until(lambda: endpoint.stats()["logs_accepted"] >= total, 30.0, 0.005))

    for _ in range(1000):
        cursor.execute()
    sent += 1000
    settled(sent)
    runs = []
    for _ in range(repeats):
        overhead = timer_overhead_ns()
        decorated = _per_call(cursor.execute, events, overhead)
        plain = _per_call(cursor.plain, events, overhead)
        sent += events
        settled(sent)
        with quiet_gc():
            t0 = time.perf_counter()
            for _ in range(events):
                cursor.execute()
            told_s = time.perf_counter() - t0
            sent += events
            done = settled(sent)
            taken_s = time.perf_counter() - t0
        runs.append(
            {
                "median_us": decorated[0] - plain[0],
                "p99_us": decorated[1] - plain[0],
                "mean_us": decorated[2] - plain[2],
                "loop_us_per_event": told_s / events * 1e6,
                "events_per_s": events / taken_s if done else None,
                "accepted_of_sent": endpoint.stats()["logs_accepted"] / sent,
            }
        )
    TelemetryClientFactory.close(url)
    return {"version": _version("databricks-sql-connector"), "runs": runs}


# --- OpenTelemetry ------------------------------------------------------------------------------


def _opentelemetry(events: int, repeats: int) -> dict[str, Any]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        LogRecordExporter,
        LogRecordExportResult,
    )

    class NoopExporter(LogRecordExporter):
        def __init__(self) -> None:
            self.exported = 0

        def export(self, batch: Any) -> LogRecordExportResult:
            self.exported += len(batch)
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    exporter = NoopExporter()
    provider = LoggerProvider()
    processor = BatchLogRecordProcessor(exporter)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("bench")
    attributes = {"statement_id": "01f0a5b2-c3d4-e5f6-0718-293a4b5c6d7e", "latency_ms": 1.5}

    def emit() -> None:
        logger.emit(body="statement", attributes=attributes)

    for _ in range(1000):
        emit()
    processor.force_flush()
    runs = []
    for _ in range(repeats):
        overhead = timer_overhead_ns()
        per_call = _per_call(emit, events, overhead)
        processor.force_flush()
        before = exporter.exported
        with quiet_gc():
            t0 = time.perf_counter()
            for _ in range(events):
                emit()
            told_s = time.perf_counter() - t0
            processor.force_flush()
            taken_s = time.perf_counter() - t0
        exported = exporter.exported - before
        runs.append(
            {
                "median_us": per_call[0],
                "p99_us": per_call[1],
                "mean_us": per_call[2],
                "loop_us_per_event": told_s / events * 1e6,
                "events_per_s": events / taken_s,
                "accepted_of_sent": exported / events,
            }
        )
    provider.shutdown()
    return {"version": _version("opentelemetry-sdk"), "runs": runs}


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Both peers; a peer that cannot be imported or driven is reported, not faked."""
    repeats = 3 if quick else 5
    events = 5000 if quick else 20000
    out: dict[str, Any] = {"events_per_run": events}
    with EndpointProcess(flag=True) as endpoint:
        for name, measure in (
            ("databricks-sql-connector", lambda: _databricks(endpoint, events, repeats)),
            ("opentelemetry-sdk", lambda: _opentelemetry(events, repeats)),
        ):
            try:
                out[name] = measure()
            except Exception as exc:  # not installed, or its internals moved: say so
                out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    with contextlib.suppress(Exception):
        out["summary"] = {
            name: statistics.median(r["median_us"] for r in out[name]["runs"])
            for name in ("databricks-sql-connector", "opentelemetry-sdk")
            if "runs" in out[name]
        }
    return out
