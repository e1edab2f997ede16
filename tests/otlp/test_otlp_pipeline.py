"""The whole pipeline with OTLP as the sink, against a loopback OTLP receiver that misbehaves.

Each case drives real sqlite3 connections through `actors.connect(..., sink=otlp)`, shuts the
facade down and checks the accounts balance exactly (told == exported + dropped by reason), that
the receiver saw what the OTLP rules say it should (retries or none), and that nothing private
reached it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _otlp_receiver import Answer, OtlpReceiver, OtlpRequest, accept_all
from _otlp_workload import DRIVER, LITERAL, QUERY_TEXT, SECRET, Told, run_connection
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from waiting import poll_until

import actors
from actors._export import otlp as otlp_sink

HOST = "warehouse.example.com"
TOKEN = "driver-secret-token"
WAIT_S = 5.0


def otlp_settings(receiver: OtlpReceiver, **overrides: Any) -> actors.TelemetrySettings:
    values: dict[str, Any] = {
        "sink": "otlp",
        "otlp_endpoint": receiver.url,
        "flush_interval_ms": 50,
        "retry_delay_ms": 5,
        "retry_max_delay_ms": 20,
        "connect_timeout_ms": 500,
        "otlp_timeout_ms": 1000,
        "breaker_threshold": 50,
        "shutdown_timeout_ms": 1500,
        "rate_limit_per_s": 500.0,
        "rate_limit_burst": 100,
    }
    values.update(overrides)
    return actors.TelemetrySettings(**values)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.stop()


def run(settings: actors.TelemetrySettings, sessions: int = 2) -> tuple[Told, dict[str, Any]]:
    """Drive `sessions` connections, shut down, and return what was told and the accounts."""
    told = Told()
    for n in range(sessions):
        telemetry = actors.connect(
            HOST, settings=settings, driver=DRIVER, auth=lambda: {"Authorization": TOKEN}
        )
        run_connection(telemetry, f"s{n}", told)
        telemetry.close()
    actors.shutdown(settings.shutdown_timeout_s + 1.0)
    hosts = actors.dump_state()["hosts"]
    (entry,) = hosts.values()
    return told, dict(entry["accounting"])


def assert_balanced(accounting: dict[str, Any], told: Told) -> None:
    assert accounting["told"] == told.events, accounting
    assert accounting["pending"] == 0, accounting
    dropped = sum(accounting["dropped"].values())
    assert accounting["exported"] + dropped == told.events, accounting
    assert accounting["balanced"], accounting


def counter_totals(receiver: OtlpReceiver, name: str) -> dict[str, int]:
    """A counter's totals by `reason` ("" if none), summed over the trees' cumulative series."""
    last: dict[tuple[int, str], int] = {}
    for request in receiver.requests("metrics"):
        for rm in request.decoded().resource_metrics:  # type: ignore[attr-defined]
            for metric in rm.scope_metrics[0].metrics:
                if metric.name != name:
                    continue
                for p in metric.sum.data_points:
                    reason = p.attributes[0].value.string_value if p.attributes else ""
                    key = (p.start_time_unix_nano, reason)
                    last[key] = max(last.get(key, 0), p.as_int)
    totals: dict[str, int] = {}
    for (_start, reason), value in last.items():
        totals[reason] = totals.get(reason, 0) + value
    return totals


def uids(receiver: OtlpReceiver) -> list[str]:
    return [
        next(a.value.string_value for a in record.attributes if a.key == "log.record.uid")
        for _resource, _scope, record in receiver.log_records()
    ]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_every_log_reaches_a_healthy_receiver_and_the_accounts_balance(
    receiver: OtlpReceiver, protocol: str
) -> None:
    told, accounting = run(otlp_settings(receiver, otlp_protocol=protocol))

    assert_balanced(accounting, told)
    assert accounting["exported"] == told.events
    assert len(uids(receiver)) == len(set(uids(receiver))) == told.logs
    assert {r.headers["content-type"] for r in receiver.requests("logs")} == {
        "application/json" if protocol == "http/json" else "application/x-protobuf"
    }
    # Each tree (one per connection here) is a cumulative series of its own start time.
    durations: dict[tuple[int, str], int] = {}
    for request in receiver.requests("metrics"):
        for rm in request.decoded().resource_metrics:  # type: ignore[attr-defined]
            for metric in rm.scope_metrics[0].metrics:
                for p in metric.histogram.data_points:
                    key = (p.start_time_unix_nano, repr(sorted(str(a) for a in p.attributes)))
                    durations[key] = max(durations.get(key, 0), p.count)
    assert sum(durations.values()) == told.logs - len(told.errors)  # errors carry no latency
    # The counters are the library's accounts (events), not the sink's count of logs.
    assert counter_totals(receiver, "driver_telemetry.events.exported") == {"": told.events}
    assert counter_totals(receiver, "driver_telemetry.events.dropped") == {}


def test_nothing_private_reaches_the_collector(receiver: OtlpReceiver) -> None:
    run(otlp_settings(receiver, otlp_headers="x-tenant=blue"))

    requests = receiver.requests()
    assert requests
    for request in requests:
        raw = request.body + repr(request.headers).encode()
        for private in (TOKEN.encode(), SECRET.encode(), LITERAL.encode(), b"SELECT"):
            assert private not in raw
        assert "authorization" not in request.headers
        assert request.headers["x-tenant"] == "blue"
    keys = {a.key for _r, _s, record in receiver.log_records() for a in record.attributes}
    assert "db.query.text" not in keys
    assert QUERY_TEXT not in repr(receiver.log_records())


def test_gzip_compression_is_sent_as_content_encoding(receiver: OtlpReceiver) -> None:
    told, accounting = run(otlp_settings(receiver, otlp_compression="gzip"))

    assert_balanced(accounting, told)
    logs = receiver.requests("logs")
    assert all(r.headers.get("content-encoding") == "gzip" for r in logs)
    assert all(r.wire_bytes < len(r.body) for r in logs)
    assert len(uids(receiver)) == told.logs


def failing_first(status: int, headers: dict[str, str], times: int = 1) -> Callable[..., Answer]:
    """Answer the first `times` logs requests with `status`, then accept everything."""
    seen = {"logs": 0}
    lock = threading.Lock()

    def answer(request: OtlpRequest) -> Answer:
        with lock:
            if request.path.endswith("/logs"):
                seen["logs"] += 1
                if seen["logs"] <= times:
                    return status, headers, b""
        return accept_all(request)

    return answer


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_retryable_status_is_retried_and_nothing_is_lost(
    receiver: OtlpReceiver, status: int
) -> None:
    receiver.answer = failing_first(status, {})

    told, accounting = run(otlp_settings(receiver), sessions=1)

    assert_balanced(accounting, told)
    assert accounting["exported"] == told.events
    assert len(set(uids(receiver))) == told.logs
    assert len(uids(receiver)) > told.logs  # the refused batch arrived twice: once refused


def delay_after_first_refusal(receiver: OtlpReceiver) -> float:
    times = [r.headers["x-arrived"] for r in receiver.requests("logs")]
    return float(times[1]) - float(times[0])


class Stamped(OtlpReceiver):
    """Records each request's arrival time in an `x-arrived` header."""

    def record(self, request: OtlpRequest) -> None:
        headers = dict(request.headers, **{"x-arrived": repr(time.monotonic())})
        super().record(
            OtlpRequest(
                method=request.method,
                path=request.path,
                headers=headers,
                body=request.body,
                wire_bytes=request.wire_bytes,
            )
        )


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_waits_as_long_as_retry_after_says(form: str) -> None:
    receiver = Stamped()
    try:
        if form == "seconds":
            retry_after = "1"
        else:  # far ahead, capped by telemetry.retry_after_max_s
            retry_after = email.utils.formatdate(time.time() + 120, usegmt=True)
        receiver.answer = failing_first(429, {"Retry-After": retry_after})
        settings = otlp_settings(receiver, retry_after_max_s=1, shutdown_timeout_ms=4000)

        told = Told()
        telemetry = actors.connect(HOST, settings=settings, driver=DRIVER)
        run_connection(telemetry, "s0", told)
        poll_until(lambda: len(receiver.requests("logs")) >= 2, WAIT_S, "the retry")
        telemetry.close()
        actors.shutdown(5.0)
        (entry,) = actors.dump_state()["hosts"].values()

        assert_balanced(entry["accounting"], told)
        assert entry["accounting"]["exported"] == told.events
        assert delay_after_first_refusal(receiver) >= 0.9  # the backoff alone is <= 20 ms
    finally:
        receiver.stop()


@pytest.mark.parametrize(("status", "reason"), [(400, "rejected"), (500, "rejected")])
def test_a_status_otlp_calls_final_is_never_retried(
    receiver: OtlpReceiver, status: int, reason: str
) -> None:
    receiver.answer = lambda request: (status, {}, b"")

    told, accounting = run(otlp_settings(receiver), sessions=1)

    assert_balanced(accounting, told)
    assert accounting["exported"] == 0
    assert accounting["dropped"] == {reason: told.events}
    assert len(uids(receiver)) == len(set(uids(receiver))) == told.logs  # each sent once


def partial(rejected: int) -> Callable[[OtlpRequest], Answer]:
    """A 2xx partial success, in the encoding of the request (int64 as a string in JSON)."""

    def answer(request: OtlpRequest) -> Answer:
        if request.path.endswith("/metrics"):
            return accept_all(request)
        if request.is_json:
            body = {"partialSuccess": {"rejectedLogRecords": str(rejected), "errorMessage": "x"}}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        response = logs_service_pb2.ExportLogsServiceResponse()
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = "attribute too long"
        return 200, {"Content-Type": "application/x-protobuf"}, response.SerializeToString()

    return answer


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_a_partial_success_drops_the_rejected_logs_under_their_own_reason(
    receiver: OtlpReceiver, protocol: str
) -> None:
    receiver.answer = partial(rejected=2)

    told, accounting = run(otlp_settings(receiver, batch_size=3, otlp_protocol=protocol), 1)

    assert_balanced(accounting, told)
    assert set(accounting["dropped"]) == {"otlp_partial_rejected"}
    assert 0 < accounting["exported"] < told.events
    assert len(uids(receiver)) == len(set(uids(receiver))) == told.logs  # none sent again
    exported = counter_totals(receiver, "driver_telemetry.events.exported")
    assert exported == {"": accounting["exported"]}
    dropped = counter_totals(receiver, "driver_telemetry.events.dropped")
    assert dropped == accounting["dropped"]


def test_a_huge_answer_is_read_only_up_to_its_cap(receiver: OtlpReceiver) -> None:
    receiver.answer = lambda request: (200, {"Content-Type": "application/json"}, b"x" * 2**22)

    told, accounting = run(otlp_settings(receiver, otlp_protocol="http/json"), sessions=1)

    assert_balanced(accounting, told)
    assert accounting["exported"] == told.events  # a 2xx it cannot read still took the logs


def test_a_body_over_the_otlp_limit_is_dropped_as_rejected_not_retried(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otlp_sink, "MAX_OTLP_BODY_BYTES", 512)

    told, accounting = run(otlp_settings(receiver), sessions=1)

    assert_balanced(accounting, told)
    assert accounting["dropped"] == {"rejected": told.events}
    assert receiver.requests("logs") == []


def test_a_hanging_collector_at_exit_costs_at_most_the_shutdown_timeout(
    receiver: OtlpReceiver,
) -> None:
    receiver.hang.set()  # each request hangs past its 200 ms timeout
    # Retries enough that the batch is still trying when the drain deadline passes.
    settings = otlp_settings(
        receiver, shutdown_timeout_ms=800, otlp_timeout_ms=200, max_retries=1000
    )
    told = Told()
    telemetry = actors.connect(HOST, settings=settings, driver=DRIVER)
    run_connection(telemetry, "s0", told)
    poll_until(lambda: receiver.requests("logs"), WAIT_S, "a request to hang")
    telemetry.close()

    started = time.monotonic()
    clean = actors.shutdown(1.5)
    took_s = time.monotonic() - started
    (entry,) = actors.dump_state()["hosts"].values()

    assert clean is False
    assert took_s < 2.5
    assert_balanced(entry["accounting"], told)
    assert entry["accounting"]["exported"] == 0
    assert "shutdown_timeout" in entry["accounting"]["dropped"], entry["accounting"]


def test_nothing_of_ours_logs_above_debug_with_a_misbehaving_collector(
    receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([(503, {}, b""), (200, {}, b"\xff\xfe not protobuf"), (400, {}, b"")])
    receiver.answer = lambda request: next(answers, (200, {}, b""))
    caplog.set_level(logging.DEBUG)

    told, accounting = run(otlp_settings(receiver, batch_size=2), sessions=1)

    assert_balanced(accounting, told)
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("actors", "messages")]
    assert ours  # the faults were noticed, at DEBUG
    assert {r.levelno for r in ours} == {logging.DEBUG}


def test_the_exporter_hands_the_sink_its_records_so_no_body_is_parsed_back(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def parse_back(*args: Any) -> Any:
        raise AssertionError("the export body was parsed back")

    monkeypatch.setattr(otlp_sink.OtlpTransport, "_decode", parse_back)

    told, accounting = run(otlp_settings(receiver, batch_size=4), sessions=1)

    assert_balanced(accounting, told)
    assert accounting["exported"] == told.events
    assert len(uids(receiver)) == len(set(uids(receiver))) == told.logs


def test_an_unauthenticated_connections_records_reach_the_sink_reduced(
    receiver: OtlpReceiver,
) -> None:
    settings = otlp_settings(receiver)
    told = Told()
    telemetry = actors.connect(HOST, settings=settings, driver=DRIVER)  # no auth
    run_connection(telemetry, "s0", told)
    telemetry.close()
    actors.shutdown(settings.shutdown_timeout_s + 1.0)

    records = receiver.log_records()
    assert len(records) == told.logs
    for _resource, _scope, record in records:
        keys = {a.key for a in record.attributes}
        assert not keys & {"databricks.session_id", "databricks.statement_id", "db.namespace"}
        assert not any(k.startswith("databricks.connection.") for k in keys)
