"""OTLP encoding cost: payload bytes per log in both encodings, CPU per log vs the Databricks one.

Not part of the test run. From the repository root: `python bench/otlp_cost.py [--logs N]`.
Logs are a realistic mix (per connection: a connection log, statements with chunk and latency
details, an error with masked text, a close), built by the aggregator's own helpers, in batches
of the default batch size. CPU is `time.process_time_ns` per log, the median of 5 repeats:

- databricks: the exporter's encoding (frontend log JSON strings in a TelemetryRequest body);
- otlp through the seam (as shipped): that body (the exporter still sizes its chunks by it),
  then the OTLP sink's `send_logs` from the chunk's records (map, encode, count the durations,
  then the settlement; the network answers at once);
- otlp body parsed back: that body, then the sink's `request`, which decodes it again (the
  path before the seam, still taken by a plain `Transport` call);
- otlp mapping alone: map and encode from the records.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors._aggregate.statements import build_log
from actors._export.http import HttpOutcome
from actors._export.otlp import OtlpTransport
from messages.commands import BatchSettled, ConnectionContext
from messages.config import TelemetrySettings
from messages.enums import (
    ExecutionResultFormat,
    OperationType,
    StatementType,
)
from messages.mask import mask_text
from messages.otlp import (
    LOGS_REQUEST,
    OtlpResource,
    ServerAddress,
    encode,
    logs_request,
)
from messages.privacy import LogKind
from messages.records import (
    ChunkDetails,
    DriverConnectionParams,
    DriverErrorInfo,
    FrontendLog,
    OperationDetail,
    ResultLatency,
    SqlDriverLog,
    SqlExecutionEvent,
)
from messages.sysconfig import DriverInfo, system_configuration
from messages.wire import encode_frontend_log, encode_request

BATCH = 100
SERVER = ServerAddress(host="adb-1234567890123456.7.azuredatabricks.net", port=443)
RESOURCE = OtlpResource(service_name="billing")


def sample_logs(count: int) -> list[FrontendLog]:
    driver = DriverInfo(name="databricks-sql-python", version="4.0.0", client_app_name="app")
    system = system_configuration(driver)
    context = ConnectionContext(
        connection_id=1,
        host=SERVER.host,
        auth=None,
        user_agent=driver.user_agent,
        system_configuration=system,
        workspace_id=1234567890123456,
    )
    logs: list[FrontendLog] = []
    n = 0
    while len(logs) < count:
        session = f"01ef{n:04x}-aaaa-4bbb-8ccc-0123456789ab"
        made = [
            (
                LogKind.CONNECTION,
                SqlDriverLog(
                    session_id=session,
                    system_configuration=system,
                    driver_connection_params=DriverConnectionParams(
                        http_path="/sql/1.0/warehouses/abc123", enable_arrow=True
                    ),
                    auth_type="pat",
                    operation_latency_ms=250,
                ),
            )
        ]
        for k in range(8):
            made.append(
                (
                    LogKind.STATEMENT,
                    SqlDriverLog(
                        session_id=session,
                        sql_statement_id=f"01ef{n:04x}-{k:04x}-4000-8000-0123456789ab",
                        system_configuration=system,
                        operation_latency_ms=40 + k,
                        sql_operation=SqlExecutionEvent(
                            statement_type=StatementType.QUERY,
                            is_compressed=True,
                            execution_result=ExecutionResultFormat.INLINE_ARROW,
                            retry_count=0,
                            chunk_details=ChunkDetails(
                                initial_chunk_latency_millis=5,
                                slowest_chunk_latency_millis=9,
                                total_chunks_present=3,
                                total_chunks_iterated=3,
                                sum_chunks_download_time_millis=20,
                            ),
                            result_latency=ResultLatency(
                                result_set_ready_latency_millis=30,
                                result_set_consumption_latency_millis=12,
                            ),
                            operation_detail=OperationDetail(
                                n_operation_status_calls=2,
                                operation_status_latency_millis=15,
                                operation_type=OperationType.EXECUTE_STATEMENT,
                            ),
                        ),
                    ),
                )
            )
        text = "[PARSE_SYNTAX_ERROR] near 'alice@example.com' token=dapi" + "0123456789abcdef" * 2
        made.append(
            (
                LogKind.ERROR,
                SqlDriverLog(
                    session_id=session,
                    system_configuration=system,
                    error_info=DriverErrorInfo(
                        error_name="ServerOperationError", stack_trace=mask_text(text)
                    ),
                ),
            )
        )
        logs += [build_log(context, kind, log, 1_764_000_000_000 + n) for kind, log in made]
        n += 1
    return logs[:count]


def batches(logs: list[FrontendLog]) -> list[list[FrontendLog]]:
    return [logs[i : i + BATCH] for i in range(0, len(logs), BATCH)]


def databricks(batch: list[FrontendLog]) -> bytes:
    return encode_request([encode_frontend_log(log) for log in batch], 1_764_000_000_000)


def otlp_from_records(batch: list[FrontendLog], protocol: str) -> bytes:
    message = logs_request(batch, resource=RESOURCE, server=SERVER, observed_ns=time.time_ns())
    return encode(message, LOGS_REQUEST, protocol)


class _Accepting:
    """Stands in for the network: every request answered 200 at once (only our CPU is timed)."""

    def request(self, method: str, url: str, **kwargs: object) -> HttpOutcome:
        return HttpOutcome(status=200)


def otlp_parsed_back(protocol: str) -> Callable[[list[FrontendLog]], bytes]:
    """The exporter's encoding, then the OTLP sink's whole request (decode, map, encode)."""
    settings = TelemetrySettings(sink="otlp", otlp_protocol=protocol)
    sink = OtlpTransport(settings, inner=_Accepting())

    def work(batch: list[FrontendLog]) -> bytes:
        url = f"https://{SERVER.host}/telemetry-ext"
        return sink.request("POST", url, body=databricks(batch), headers={}).body

    return work


def otlp_through_seam(protocol: str) -> Callable[[list[FrontendLog]], bytes]:
    """The exporter's encoding (for its chunks), then `send_logs` with the records themselves."""
    settings = TelemetrySettings(sink="otlp", otlp_protocol=protocol)
    sink = OtlpTransport(settings, inner=_Accepting())
    url = f"https://{SERVER.host}/telemetry-ext"

    def work(batch: list[FrontendLog]) -> bytes:
        body = databricks(batch)
        outcome = sink.send_logs(url, logs=batch, body=body, headers={}, timeout_s=None)
        n = len(batch)
        sink.settled(BatchSettled(batch_id=1, exported_events=n, exported_logs=n, dropped={}))
        return outcome.body

    return work


def cpu_per_log_us(work: Callable[[list[FrontendLog]], bytes], logs: list[FrontendLog]) -> float:
    runs = []
    for _ in range(5):
        started = time.process_time_ns()
        for batch in batches(logs):
            work(batch)
        runs.append((time.process_time_ns() - started) / len(logs) / 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=5000)
    count = parser.parse_args().logs
    logs = sample_logs(count)
    print(f"{count} logs in batches of {BATCH} (connection, 8 statements, error, per session)\n")
    print(f"{'encoding':<28}{'bytes/log':>10}{'gzip bytes/log':>16}")
    bodies = {
        "databricks JSON": [databricks(b) for b in batches(logs)],
        "otlp http/protobuf": [otlp_from_records(b, "http/protobuf") for b in batches(logs)],
        "otlp http/json": [otlp_from_records(b, "http/json") for b in batches(logs)],
    }
    for name, parts in bodies.items():
        raw = sum(map(len, parts)) / count
        packed = sum(len(gzip.compress(p, compresslevel=6)) for p in parts) / count
        print(f"{name:<28}{raw:>10.0f}{packed:>16.0f}")
    print(f"\n{'CPU per log':<40}{'µs':>8}{'vs databricks':>15}")
    base = cpu_per_log_us(databricks, logs)
    rows = {
        "databricks encoder": base,
        "otlp protobuf, through the seam": cpu_per_log_us(otlp_through_seam("http/protobuf"), logs),
        "otlp json, through the seam": cpu_per_log_us(otlp_through_seam("http/json"), logs),
        "otlp protobuf, body parsed back": cpu_per_log_us(otlp_parsed_back("http/protobuf"), logs),
        "otlp json, body parsed back": cpu_per_log_us(otlp_parsed_back("http/json"), logs),
        "otlp protobuf, mapping alone": cpu_per_log_us(
            lambda b: otlp_from_records(b, "http/protobuf"), logs
        ),
        "otlp json, mapping alone": cpu_per_log_us(
            lambda b: otlp_from_records(b, "http/json"), logs
        ),
        "gzip of otlp protobuf (level 6)": cpu_per_log_us(
            lambda b: gzip.compress(otlp_from_records(b, "http/protobuf"), compresslevel=6), logs
        )
        - cpu_per_log_us(lambda b: otlp_from_records(b, "http/protobuf"), logs),
    }
    for name, value in rows.items():
        print(f"{name:<40}{value:>8.1f}{value / base:>14.1f}x")


if __name__ == "__main__":
    main()
