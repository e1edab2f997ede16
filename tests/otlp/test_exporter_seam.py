"""The exporter's seam for record-taking transports (OTLP): the real ExporterActor, a recording
`LogsTransport`; chunking, partial success, settlement and the drain deadline as the exporter
decides them."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import pytest

from actors._aggregate.statements import build_log
from actors._export import outbox
from actors._export.http import HttpOutcome
from actors._export.outbox import LogsTransport
from actors.exporter import ExporterActor
from messages.commands import (
    BatchSettled,
    ConnectionContext,
    Drain,
    Drained,
    DumpState,
    ExportBatch,
)
from messages.config import TelemetrySettings
from messages.privacy import LogKind
from messages.records import DriverConnectionParams, FrontendLog, SqlDriverLog, SystemConfiguration

ASK_S = 2.0
SYSTEM = SystemConfiguration(driver_name="SeamDriver", driver_version="1.0")


class Recording:
    """A `LogsTransport` that records each chunk's records and body; answers `taken(n)` logs."""

    partial_reason = "seam_partial"

    def __init__(self, taken: Any = None) -> None:
        self.chunks: list[tuple[list[FrontendLog], int]] = []
        self.settlements: list[tuple[BatchSettled, float | None]] = []
        self.taken = taken or (lambda n: n)

    def request(self, method: str, url: str, **kwargs: Any) -> HttpOutcome:
        raise AssertionError("a LogsTransport is handed records, not asked to parse a body")

    def send_logs(
        self,
        url: str,
        *,
        logs: Sequence[FrontendLog],
        body: bytes,
        headers: Any,
        timeout_s: float | None,
    ) -> HttpOutcome:
        self.chunks.append((list(logs), len(json.loads(body)["protoLogs"])))
        answer = {"numProtoSuccess": self.taken(len(logs)), "errors": []}
        return HttpOutcome(status=200, body=json.dumps(answer).encode())

    def settled(self, settled: BatchSettled, timeout_s: float | None = None) -> None:
        self.settlements.append((settled, timeout_s))

    @property
    def accounts(self) -> dict[str, Any]:
        return {"chunks": len(self.chunks)}


def context(auth: bool = True) -> ConnectionContext:
    return ConnectionContext(
        connection_id=1,
        host="host.example.com",
        auth=(lambda: {"Authorization": "Bearer t"}) if auth else None,
        user_agent="SeamDriver/1.0",
        system_configuration=SYSTEM,
    )


def batch(reply_to: Any, count: int, *, auth: bool = True) -> ExportBatch:
    logs = tuple(
        build_log(
            context(auth),
            LogKind.CONNECTION,
            SqlDriverLog(
                session_id=f"s{n}",
                system_configuration=SYSTEM,
                driver_connection_params=DriverConnectionParams(http_path=f"/p/{n}"),
                operation_latency_ms=5,
            ),
            1_755_000_000_000 + n,
        )
        for n in range(count)
    )
    return ExportBatch(
        batch_id=1,
        context=context(auth),
        logs=logs,
        event_counts=(2,) * count,
        reply_to=reply_to,
    )


def exporter(transport: Recording, timer: Any, **settings: Any) -> Any:
    return ExporterActor.start(
        base_url="https://host.example.com",
        settings=TelemetrySettings(rate_limit_burst=100, **settings),
        transport=transport,
        timer=timer,
        rng=random.Random(1),
    )


def test_the_recording_transport_is_a_logs_transport() -> None:
    assert isinstance(Recording(), LogsTransport)


def test_each_chunk_of_a_big_batch_hands_over_exactly_its_own_records(
    recorder: Any, manual_timer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "MAX_BODY_BYTES", 6_000)  # a few logs per body
    transport = Recording()
    aggregator = recorder()
    sent = batch(aggregator.ref, 20)

    exporter(transport, manual_timer).tell(sent)
    (settled,) = aggregator.wait_for(BatchSettled)

    assert len(transport.chunks) >= 2
    assert [log for logs, _ in transport.chunks for log in logs] == list(sent.logs)
    assert all(len(logs) == in_body for logs, in_body in transport.chunks)
    assert settled.exported_events == 40 and settled.dropped == {}
    assert transport.settlements == [(settled, None)]


def test_a_partial_answer_drops_as_the_transports_own_reason_and_its_settlement_is_seen(
    recorder: Any, manual_timer: Any
) -> None:
    transport = Recording(taken=lambda n: n - 1)
    aggregator = recorder()

    ref = exporter(transport, manual_timer)
    ref.tell(batch(aggregator.ref, 3))
    (settled,) = aggregator.wait_for(BatchSettled)

    assert settled.dropped == {"seam_partial": 2} and settled.exported_events == 4
    assert transport.settlements == [(settled, None)]
    state = ref.ask(DumpState(), timeout=ASK_S)
    assert state["dropped"] == {"seam_partial": 2}
    assert state["sink"] == {"chunks": 1}


def test_an_unauthenticated_batch_hands_over_its_reduced_records(
    recorder: Any, manual_timer: Any
) -> None:
    transport = Recording()
    aggregator = recorder()

    exporter(transport, manual_timer).tell(batch(aggregator.ref, 2, auth=False))
    aggregator.wait_for(BatchSettled)

    ((logs, _),) = transport.chunks
    for log in logs:
        driver_log = log.entry.sql_driver_log if log.entry else None
        assert driver_log is not None and driver_log.session_id is None
        assert driver_log.driver_connection_params is None


def test_a_settlement_while_draining_carries_what_is_left_of_the_deadline(
    recorder: Any, manual_timer: Any, clock: Any
) -> None:
    transport = Recording()
    aggregator = recorder()
    ref = ExporterActor.start(
        base_url="https://host.example.com",
        settings=TelemetrySettings(rate_limit_burst=100),
        transport=transport,
        timer=manual_timer,
        clock=clock,
        rng=random.Random(1),
    )
    done = recorder()

    ref.tell(Drain(deadline_s=clock() + 1.5, notify=done.ref))
    ref.tell(batch(aggregator.ref, 1))
    aggregator.wait_for(BatchSettled)

    ((_settled, timeout_s),) = transport.settlements
    assert timeout_s == pytest.approx(1.5)
    ref.ask(DumpState(), timeout=ASK_S)
    assert done.of_type(Drained)
