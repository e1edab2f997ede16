"""AggregatorActor as a real actor: one log per statement, batches per connection, exact accounts.

A `Recorder` stands in for the exporter (the test plays its part by telling `BatchSettled` and
`Drained` back), a `ManualTimer` for the timer unless the flush interval itself is under test.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import pykka
import pytest
from waiting import poll_until

import actors
import actors.aggregator as aggregator_module
from actors._runtime.lane import LANE_WAKE
from actors._runtime.timer import Timer
from actors.aggregator import AggregatorActor
from messages import events as ev
from messages.accounts import snapshot_json
from messages.commands import (
    Abandon,
    BatchSettled,
    ConnectionContext,
    Drain,
    Drained,
    DumpState,
    ExportBatch,
    FlagDecided,
    Flush,
    FlushTick,
)
from messages.config import TelemetrySettings
from messages.enums import (
    AuthMech,
    DriverMode,
    ExecutionResultFormat,
    OperationType,
    StatementType,
)
from messages.records import DriverConnectionParams, HostInfo, SqlDriverLog, SystemConfiguration
from messages.sysconfig import DriverInfo
from messages.wire import encode_frontend_log

if TYPE_CHECKING:
    from conftest import ManualTimer, Recording

ASK_S = 2.0
SYSTEM = SystemConfiguration(driver_name="TestDriver", driver_version="1.0.0")
TOKEN = "dapi0123456789abcdef0123456789abcdef"
DRIVER = DriverInfo(name="TestDriver", version="1.0.0")


def make_context(connection_id: int = 1, workspace_id: int | None = None) -> ConnectionContext:
    return ConnectionContext(
        connection_id=connection_id,
        host="host.example.com",
        auth=lambda: {"Authorization": f"Bearer token-{connection_id}"},
        user_agent="TestDriver/1.0.0",
        system_configuration=SYSTEM,
        workspace_id=workspace_id,
    )


@attrs.define
class Harness:
    """One started aggregator, its recording exporter and its (manual or real) timer."""

    ref: pykka.ActorRef[Any]
    exporter: Recording
    timer: Any

    def tell(self, context: ConnectionContext, *events: object) -> None:
        """Tell events as a driver thread does: through the aggregator's lane."""
        lane = self.ref.actor_inbox.lane  # type: ignore[attr-defined]
        for event in events:
            assert lane.offer((context, event))
        # While events keep coming the actor looks at its lane on a timer tick, which a
        # ManualTimer does not fire: wake it as a driver would.
        self.ref.tell(LANE_WAKE)

    def flag(self, enabled: bool) -> None:
        """Decide the flag, and wait until it is (events offered later are folded after it)."""
        self.ref.tell(FlagDecided(enabled=enabled))
        self.ref.ask(DumpState(), timeout=ASK_S)

    def snapshot(self) -> dict[str, Any]:
        """A state dump (also a barrier); every snapshot must balance."""
        state = snapshot_json(self.ref.ask(DumpState(), timeout=ASK_S))
        assert state["balanced"], state
        json.dumps(state)
        return state

    def batches(self) -> list[ExportBatch]:
        """Batches handed to the exporter so far (after a barrier on the aggregator)."""
        self.snapshot()
        self.exporter.barrier()
        return self.exporter.of_type(ExportBatch)

    def logs(self) -> list[SqlDriverLog]:
        """Every driver log handed to the exporter so far, in order."""
        return [
            log.entry.sql_driver_log
            for batch in self.batches()
            for log in batch.logs
            if log.entry is not None and log.entry.sql_driver_log is not None
        ]

    def settle(self, batch: ExportBatch, **dropped: int) -> None:
        """Play the exporter: settle `batch`, exporting all but the `dropped` events."""
        lost = sum(dropped.values())
        total = sum(batch.event_counts)
        self.ref.tell(
            BatchSettled(
                batch_id=batch.batch_id,
                exported_events=total - lost,
                exported_logs=len(batch.logs) if not lost else 0,
                dropped=dropped,
            )
        )


@pytest.fixture
def start(recorder: Callable[[], Recording], manual_timer: ManualTimer) -> Callable[..., Harness]:
    """Start an aggregator with small settings (override any as keywords)."""

    def start_(timer: Any = None, **overrides: Any) -> Harness:
        options: dict[str, Any] = {"batch_size": 1, "flush_interval_ms": 50}
        options.update(overrides)
        exporter = recorder()
        used_timer = manual_timer if timer is None else timer
        ref = AggregatorActor.start(
            settings=TelemetrySettings(**options), exporter=exporter.ref, timer=used_timer
        )
        return Harness(ref=ref, exporter=exporter, timer=used_timer)

    return start_


def statement_events(statement_id: str = "st-1", session_id: str = "s-1") -> list[object]:
    """A statement's life: start, three polls, three chunks, completion."""
    return [
        ev.StatementStarted(
            statement_id=statement_id, session_id=session_id, statement_type=StatementType.QUERY
        ),
        ev.OperationPolled(statement_id=statement_id, latency_ms=10.0),
        ev.OperationPolled(statement_id=statement_id, latency_ms=20.0),
        ev.OperationPolled(statement_id=statement_id, latency_ms=30.4),
        ev.ChunkDownloaded(statement_id=statement_id, chunk_index=0, latency_ms=100.0),
        ev.ChunkDownloaded(
            statement_id=statement_id, chunk_index=1, latency_ms=250.0, compressed=True
        ),
        ev.ChunkDownloaded(statement_id=statement_id, chunk_index=2, latency_ms=50.0),
        ev.StatementCompleted(
            statement_id=statement_id,
            execution_result=ExecutionResultFormat.INLINE_ARROW,
            retry_count=2,
            result_ready_latency_ms=5.0,
            consumption_latency_ms=7.0,
            operation_latency_ms=400.0,
            total_chunks_present=3,
        ),
    ]


# --- one log per statement ----------------------------------------------------------------------


def test_one_log_per_statement_aggregates_polls_chunks_retries_and_latencies(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    agg.flag(True)
    context = make_context()
    agg.tell(context, *statement_events())

    (batch,) = agg.exporter.wait_for(ExportBatch)
    assert batch.context is context
    assert batch.event_counts == (8,)
    (log,) = agg.logs()
    assert log.sql_statement_id == "st-1"
    assert log.session_id == "s-1"
    assert log.operation_latency_ms == 400
    assert log.system_configuration == SYSTEM
    op = log.sql_operation
    assert op is not None
    assert op.statement_type is StatementType.QUERY
    assert op.execution_result is ExecutionResultFormat.INLINE_ARROW
    assert op.retry_count == 2
    assert op.is_compressed is True
    assert op.operation_detail is not None
    assert op.operation_detail.n_operation_status_calls == 3
    assert op.operation_detail.operation_status_latency_millis == 60
    assert op.operation_detail.operation_type is OperationType.EXECUTE_STATEMENT
    assert op.chunk_details is not None
    assert op.chunk_details.initial_chunk_latency_millis == 100
    assert op.chunk_details.slowest_chunk_latency_millis == 250
    assert op.chunk_details.sum_chunks_download_time_millis == 400
    assert op.chunk_details.total_chunks_iterated == 3
    assert op.chunk_details.total_chunks_present == 3
    assert op.result_latency is not None
    assert op.result_latency.result_set_ready_latency_millis == 5
    assert op.result_latency.result_set_consumption_latency_millis == 7
    assert log.error_info is None

    state = agg.snapshot()
    assert state["received"] == 8
    assert state["pending_detail"]["in_export_events"] == 8
    assert state["logs_emitted"] == {"statement": 1}
    agg.settle(batch)
    state = agg.snapshot()
    assert (state["exported"], state["pending"], state["exported_logs"]) == (8, 0, 1)


def test_statement_events_stay_pending_until_the_statement_ends(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    agg.flag(True)
    agg.tell(make_context(), *statement_events()[:-1])

    state = agg.snapshot()
    assert state["open_statements"] == 1
    assert state["pending_detail"]["open_statement_events"] == 7
    assert agg.batches() == []


def test_connection_log_is_emitted_at_once_without_the_server_address(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    agg.flag(True)
    params = DriverConnectionParams(
        http_path="/sql/1.0/warehouses/abc",
        mode=DriverMode.THRIFT,
        host_info=HostInfo(host_url="host.example.com", port=443),
        auth_mech=AuthMech.PAT,
    )
    agg.tell(
        make_context(),
        ev.ConnectionOpened(
            session_id="s-1", connection_params=params, auth_type="pat", latency_ms=12.6
        ),
    )

    (batch,) = agg.exporter.wait_for(ExportBatch)
    log = batch.logs[0].entry.sql_driver_log
    assert log.session_id == "s-1"
    assert log.auth_type == "pat"
    assert log.operation_latency_ms == 13
    assert log.system_configuration == SYSTEM
    assert log.sql_operation is None
    assert log.driver_connection_params == attrs.evolve(params, host_info=None)
    assert agg.snapshot()["logs_emitted"] == {"connection": 1}


@pytest.mark.parametrize(
    "ending",
    [
        ev.StatementCancelled(statement_id="st-1"),
        ev.StatementClosed(statement_id="st-1"),
    ],
    ids=["cancel", "close"],
)
def test_statement_is_emitted_when_cancelled_or_closed(
    start: Callable[..., Harness], ending: object
) -> None:
    agg = start()
    agg.flag(True)
    agg.tell(make_context(), *statement_events()[:4], ending)

    (batch,) = agg.exporter.wait_for(ExportBatch)
    assert batch.event_counts == (5,)
    (log,) = agg.logs()
    assert log.sql_statement_id == "st-1"
    assert log.sql_operation.operation_detail.n_operation_status_calls == 3
    assert agg.snapshot()["open_statements"] == 0


def test_connection_closed_emits_only_its_own_sessions_statements_then_a_close_log(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=100)
    agg.flag(True)
    context = make_context()
    agg.tell(
        context,
        ev.StatementStarted(statement_id="a-1", session_id="s-a"),
        ev.StatementStarted(statement_id="a-2", session_id="s-a"),
        ev.StatementStarted(statement_id="b-1", session_id="s-b"),
        ev.ConnectionClosed(session_id="s-a", latency_ms=3.0),
    )
    agg.ref.tell(Flush())

    logs = agg.logs()
    assert [log.sql_statement_id for log in logs] == ["a-1", "a-2", None]
    close = logs[-1]
    assert close.session_id == "s-a"
    assert close.operation_latency_ms == 3
    assert close.sql_operation.operation_detail.operation_type is OperationType.DELETE_SESSION
    state = agg.snapshot()
    assert state["open_statements"] == 1
    assert state["logs_emitted"] == {"statement": 2, "close": 1}


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ev.ErrorOccurred(error_name="AuthError", http_status=401, statement_id="st-1"),
        ev.ErrorOccurred(error_name="SyntaxError", retryable=False, statement_id="st-1"),
    ],
    ids=["http-401", "retryable-false"],
)
def test_terminal_error_ends_its_statement_at_once_with_error_info(
    start: Callable[..., Harness], error: ev.ErrorOccurred
) -> None:
    agg = start()
    agg.flag(True)
    agg.tell(make_context(), *statement_events()[:2], error)

    (batch,) = agg.exporter.wait_for(ExportBatch)
    assert batch.event_counts == (3,)
    (log,) = agg.logs()
    assert log.sql_statement_id == "st-1"
    assert log.error_info is not None
    assert log.error_info.error_name == error.error_name
    assert log.sql_operation is not None
    state = agg.snapshot()
    assert state["open_statements"] == 0
    assert state["logs_emitted"] == {"error": 1}


def test_error_without_a_statement_is_its_own_log_sent_at_once(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    agg.flag(True)
    agg.tell(make_context(), ev.ErrorOccurred(error_name="ConnectError", session_id="s-1"))

    agg.exporter.wait_for(ExportBatch)
    (log,) = agg.logs()
    assert log.error_info.error_name == "ConnectError"
    assert log.session_id == "s-1"
    assert log.sql_operation is None


def test_retryable_error_is_held_until_its_statement_completes(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    agg.flag(True)
    context = make_context()
    events = statement_events()
    agg.tell(
        context,
        *events[:2],
        ev.ErrorOccurred(error_name="ServiceUnavailable", http_status=503, statement_id="st-1"),
    )
    state = agg.snapshot()
    assert agg.batches() == []
    assert state["pending_detail"]["open_statement_events"] == 3

    agg.tell(context, events[-1])
    (batch,) = agg.exporter.wait_for(ExportBatch)
    assert batch.event_counts == (4,)
    (log,) = agg.logs()
    assert log.error_info.error_name == "ServiceUnavailable"
    assert log.sql_operation.retry_count == 2
    assert agg.snapshot()["logs_emitted"] == {"error": 1}


def test_error_message_is_masked_before_it_leaves_the_aggregator(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    agg.flag(True)
    message = (
        f"[HTTP 400] token {TOKEN} rejected for SELECT * FROM users "
        "WHERE name = 'Alice Secret' AND path='/home/alice/data.csv'"
    )
    agg.tell(
        make_context(),
        ev.ErrorOccurred(error_name="ServerError", message=message, retryable=False),
    )

    (batch,) = agg.exporter.wait_for(ExportBatch)
    trace = batch.logs[0].entry.sql_driver_log.error_info.stack_trace
    wire = encode_frontend_log(batch.logs[0])
    for secret in (TOKEN, "Alice Secret", "/home/alice"):
        assert secret not in trace
        assert secret not in wire
    assert "SELECT * FROM users" not in trace  # statement words are masked too


# --- batching -----------------------------------------------------------------------------------


def opened(n: int) -> list[object]:
    return [ev.ConnectionOpened(session_id=f"s-{i}") for i in range(n)]


def test_batches_go_out_at_batch_size_and_the_rest_on_the_flush_tick(
    start: Callable[..., Harness], manual_timer: ManualTimer
) -> None:
    agg = start(batch_size=3)
    agg.flag(True)
    agg.tell(make_context(), *opened(7))

    assert [len(b.logs) for b in agg.batches()] == [3, 3]
    assert agg.snapshot()["queued_logs"] == 1
    manual_timer.fire(FlushTick)
    agg.exporter.wait_for(ExportBatch, count=3)
    assert [len(b.logs) for b in agg.batches()] == [3, 3, 1]
    assert [s.delay_s for s in manual_timer.scheduled(FlushTick)] == [0.05, 0.05]


def test_real_timer_flushes_on_the_interval_again_and_again(
    start: Callable[..., Harness], timer: Timer
) -> None:
    agg = start(timer=timer, batch_size=100, flush_interval_ms=20)
    agg.flag(True)
    context = make_context()
    agg.tell(context, ev.ConnectionOpened(session_id="s-1"))
    agg.exporter.wait_for(ExportBatch)
    agg.tell(context, ev.ConnectionOpened(session_id="s-2"))
    batches = agg.exporter.wait_for(ExportBatch, count=2)
    assert [len(b.logs) for b in batches] == [1, 1]


def test_batches_are_grouped_per_connection_and_never_mixed(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=100)
    agg.flag(True)
    first, second = make_context(1), make_context(2)
    for i in range(5):
        agg.tell(first, ev.ConnectionOpened(session_id=f"first-{i}"))
        agg.tell(second, ev.ConnectionOpened(session_id=f"second-{i}"))
    agg.ref.tell(Flush())

    batches = agg.batches()
    assert len(batches) == 2
    by_context = {b.context.connection_id: b for b in batches}
    assert by_context[1].context is first
    assert by_context[2].context is second
    for connection_id, prefix in ((1, "first-"), (2, "second-")):
        sessions = [log.entry.sql_driver_log.session_id for log in by_context[connection_id].logs]
        assert sessions == [f"{prefix}{i}" for i in range(5)]
    assert len({b.batch_id for b in batches}) == 2


def test_a_full_queue_is_sent_as_one_batch_per_connection(start: Callable[..., Harness]) -> None:
    agg = start(batch_size=2)
    agg.flag(True)
    first, second = make_context(1), make_context(2)
    agg.tell(first, ev.ConnectionOpened(session_id="f-0"))
    agg.tell(second, ev.ConnectionOpened(session_id="s-0"))

    batches = agg.batches()
    assert sorted(b.context.connection_id for b in batches) == [1, 2]
    assert all(len(b.logs) == 1 for b in batches)


# --- the feature flag ---------------------------------------------------------------------------


def test_logs_are_held_while_the_flag_is_unknown_and_sent_when_it_turns_on(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=1)
    agg.tell(make_context(), *opened(3))

    state = agg.snapshot()
    assert (state["flag"], state["queued_logs"], state["pending"]) == ("unknown", 3, 3)
    assert agg.batches() == []

    agg.flag(True)
    agg.exporter.wait_for(ExportBatch, count=3)
    state = agg.snapshot()
    assert (state["flag"], state["queued_logs"]) == ("on", 0)
    assert state["pending_detail"]["in_export_events"] == 3


def test_flag_off_drops_held_logs_and_later_events_as_flag_off(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=100)
    context = make_context()
    agg.tell(context, *opened(2))
    agg.flag(False)
    agg.tell(context, *opened(2), *statement_events())

    state = agg.snapshot()
    assert state["flag"] == "off"
    assert state["dropped"] == {"flag_off": 12}
    assert state["pending"] == 0
    assert agg.batches() == []


# --- invalid events -----------------------------------------------------------------------------


class Hostile:
    """An object that fights back when printed or compared."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq for you")

    __hash__ = None  # type: ignore[assignment]


INVALID_EVENTS: list[object] = [
    "not an event",
    42,
    Hostile(),
    ev.OperationPolled(statement_id="st-1", latency_ms=math.nan),
    ev.OperationPolled(statement_id="st-1", latency_ms=math.inf),
    ev.ChunkDownloaded(statement_id="st-1", chunk_index=0, latency_ms=-1.0),
    ev.ChunkDownloaded(statement_id="st-1", chunk_index=-1, latency_ms=1.0),
    ev.ChunkDownloaded(statement_id="st-1", chunk_index=0, latency_ms=1.0, size_bytes=-5),
    ev.OperationPolled(statement_id="st-1", latency_ms="12"),  # type: ignore[arg-type]
    ev.OperationPolled(statement_id="st-1", latency_ms=True),  # type: ignore[arg-type]
    ev.StatementStarted(statement_id="", session_id="s-1"),
    ev.StatementStarted(statement_id="st-2", session_id=""),
    ev.StatementStarted(statement_id=Hostile(), session_id="s-1"),  # type: ignore[arg-type]
    ev.StatementStarted(statement_id="x" * 1000, session_id="s-1"),
    ev.StatementStarted(
        statement_id="st-3",
        session_id="s-1",
        statement_type="BOGUS",  # type: ignore[arg-type]
    ),
    ev.StatementStarted(
        statement_id="st-3",
        session_id="s-1",
        operation_type="EXECUTE_STATEMENT",  # type: ignore[arg-type]
    ),
    ev.StatementCompleted(
        statement_id="st-1",
        execution_result="NOT_A_FORMAT",  # type: ignore[arg-type]
    ),
    ev.StatementCompleted(statement_id="st-1", retry_count=-1),
    ev.StatementCompleted(statement_id="st-1", operation_latency_ms=math.nan),
    ev.StatementCompleted(statement_id="st-1", total_chunks_present=Hostile()),  # type: ignore[arg-type]
    ev.ConnectionOpened(session_id="s-9", latency_ms=-3.0),
    ev.ConnectionOpened(session_id="s-9", auth_type=Hostile()),  # type: ignore[arg-type]
    ev.ConnectionOpened(session_id="s-9", connection_params="THRIFT"),  # type: ignore[arg-type]
    ev.ConnectionOpened(session_id="s-9", system_configuration=Hostile()),  # type: ignore[arg-type]
    ev.ConnectionOpened(
        session_id="s-9",
        connection_params=DriverConnectionParams(mode="THRIFT"),  # type: ignore[arg-type]
    ),
    ev.ConnectionOpened(
        session_id="s-9",
        connection_params=DriverConnectionParams(host_info=HostInfo(port=True)),
    ),
    ev.ConnectionOpened(
        session_id="s-9",
        system_configuration=SystemConfiguration(os_name=3),  # type: ignore[arg-type]
    ),
    ev.ConnectionOpened(session_id="lone \ud800 surrogate"),
    ev.ChunkDownloaded(
        statement_id="st-1",
        chunk_index=0,
        latency_ms=1.0,
        compressed=Hostile(),  # type: ignore[arg-type]
    ),
    ev.ErrorOccurred(error_name="E", retryable="yes"),  # type: ignore[arg-type]
    ev.ConnectionClosed(session_id=None),  # type: ignore[arg-type]
    ev.StatementCancelled(statement_id=7),  # type: ignore[arg-type]
    ev.ErrorOccurred(error_name=""),
    ev.ErrorOccurred(error_name="E", http_status=999),
    ev.ErrorOccurred(error_name="E", statement_id=""),
]


def test_invalid_events_are_counted_and_never_corrupt_the_batch(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=100)
    agg.flag(True)
    context = make_context()
    valid = statement_events()
    agg.tell(context, valid[0])
    for event in INVALID_EVENTS:
        agg.tell(context, event)
    agg.tell(context, *valid[1:], ev.ConnectionOpened(session_id="s-ok"))
    agg.ref.tell((context, "three", "items"))
    agg.ref.tell(Hostile())
    agg.ref.tell(Flush())

    (batch,) = agg.batches()
    assert batch.event_counts == (8, 1)
    for log in batch.logs:
        json.loads(encode_frontend_log(log))
    state = agg.snapshot()
    invalid = len(INVALID_EVENTS)
    assert state["dropped"] == {"invalid_event": invalid}
    assert state["received"] == invalid + 9  # the two told non-events are not driver events
    assert state["stats"]["unknown_commands"] == 2
    assert state["handler_errors"] == 0


def test_an_unknown_command_is_logged_at_debug_and_not_counted_as_an_event(
    start: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    agg = start()
    with caplog.at_level(logging.DEBUG, logger="actors"):
        agg.ref.tell((make_context(), ev.ConnectionOpened(session_id="s-1")))  # not the lane
        agg.ref.tell(Hostile())
        state = agg.snapshot()

    assert (state["received"], state["dropped"]) == (0, {})
    assert state["stats"] == {"unknown_commands": 2}
    ours = [r for r in caplog.records if r.name.startswith("actors")]
    assert [r.levelno for r in ours] == [logging.DEBUG] * 2
    assert [r.getMessage() for r in ours] == [
        "aggregator: ignored an unknown tuple",
        "aggregator: ignored an unknown Hostile",
    ]


# --- bounds -------------------------------------------------------------------------------------


def test_a_statement_open_when_the_flag_turns_out_off_is_dropped_not_held_forever(
    start: Callable[..., Harness],
) -> None:
    agg = start()
    context = make_context()
    agg.tell(context, ev.StatementStarted(statement_id="st-1", session_id="s-1"))
    assert agg.snapshot()["open_statements"] == 1  # folded while the flag was unknown
    agg.flag(False)
    agg.tell(context, ev.StatementCompleted(statement_id="st-1"))  # its end comes after

    state = agg.snapshot()
    assert (state["open_statements"], state["pending"]) == (0, 0)
    assert state["dropped"] == {"flag_off": 2}


def test_a_full_queue_leaves_the_rest_in_the_lane_until_there_is_room(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=100, max_queued_logs=3)
    agg.tell(make_context(), *opened(5))  # the flag is not known yet: nothing can go

    state = agg.snapshot()
    assert (state["queued_logs"], state["lane_events"]) == (3, 2)
    assert state["dropped"] == {} and (state["received"], state["pending"]) == (5, 5)
    assert state["stats"]["lane_waits_for_room"] == 1

    agg.flag(True)  # the three go to the exporter; the two from the lane take their places
    (batch,) = agg.batches()
    assert len(batch.logs) == 3
    state = agg.snapshot()
    assert (state["queued_logs"], state["lane_events"], state["received"]) == (2, 0, 5)
    agg.ref.tell(Flush(reply=None))
    agg.settle(batch)
    assert [len(b.logs) for b in agg.batches()] == [3, 2]
    assert agg.snapshot()["dropped"] == {}


def test_a_flush_waits_for_the_events_told_before_it_that_wait_for_room(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=2, max_queued_logs=2, max_pending_batches=1)
    agg.flag(True)
    agg.tell(make_context(), *opened(7))
    reply: pykka.ThreadingFuture[bool] = pykka.ThreadingFuture()
    agg.ref.tell(Flush(reply=reply))
    for sent in range(7):  # play the exporter: settle each batch as it comes
        batches = agg.batches()
        if len(batches) == sent:
            break
        agg.settle(batches[sent])
    assert [len(b.logs) for b in agg.batches()] == [2, 2, 2, 1]
    state = agg.snapshot()
    assert state["dropped"] == {} and state["exported"] == 7
    assert agg.exporter.of_type(Flush)[-1].reply is reply  # it went on only after the last log


def test_pending_statement_bound_emits_the_oldest_statement_early(
    start: Callable[..., Harness],
) -> None:
    agg = start(max_pending_statements=2)
    agg.flag(True)
    context = make_context()
    for i in range(3):
        agg.tell(context, ev.StatementStarted(statement_id=f"st-{i}", session_id="s-1"))

    (log,) = agg.logs()
    assert log.sql_statement_id == "st-0"
    state = agg.snapshot()
    assert state["open_statements"] == 2
    assert state["stats"]["evicted_early"] == 1


# --- drain and abandon --------------------------------------------------------------------------


def test_drain_emits_open_statements_sends_them_then_drains_the_exporter_and_reports(
    start: Callable[..., Harness], recorder: Callable[[], Recording]
) -> None:
    agg = start(batch_size=100)
    agg.flag(True)
    context = make_context()
    agg.tell(context, ev.ConnectionOpened(session_id="s-1"), *statement_events()[:3])
    notify = recorder()
    agg.ref.tell(Drain(deadline_s=123.0, notify=notify.ref))

    (drain,) = agg.exporter.wait_for(Drain)
    assert drain.deadline_s == 123.0
    kinds = [type(m) for m in agg.exporter.messages]
    assert kinds == [ExportBatch, Drain]
    (batch,) = agg.exporter.of_type(ExportBatch)
    assert batch.event_counts == (1, 3)
    assert [log.entry.sql_driver_log.sql_statement_id for log in batch.logs] == [None, "st-1"]

    agg.tell(context, ev.ConnectionOpened(session_id="late"))
    agg.settle(batch)
    drain.notify.tell(Drained())
    (drained,) = notify.wait_for(Drained)
    final = snapshot_json(drained.snapshot)
    assert final["balanced"]
    assert (final["received"], final["exported"], final["pending"]) == (5, 4, 0)
    assert final["dropped"] == {"after_shutdown": 1}


def test_drain_waits_for_an_unknown_flag_then_exports_once_it_turns_on(
    start: Callable[..., Harness], recorder: Callable[[], Recording]
) -> None:
    agg = start(batch_size=100)
    agg.tell(make_context(), *opened(2), *statement_events()[:2])
    notify = recorder()
    agg.ref.tell(Drain(deadline_s=0.0, notify=notify.ref))

    state = agg.snapshot()
    assert agg.batches() == []
    assert (state["open_statements"], state["queued_logs"]) == (0, 3)

    agg.flag(True)
    (drain,) = agg.exporter.wait_for(Drain)
    (batch,) = agg.exporter.of_type(ExportBatch)
    assert batch.event_counts == (1, 1, 2)
    agg.settle(batch)
    drain.notify.tell(Drained())
    final = snapshot_json(notify.wait_for(Drained)[0].snapshot)
    assert (final["exported"], final["pending"], final["dropped"]) == (4, 0, {})


def test_abandon_while_waiting_for_the_flag_drops_held_logs_as_flag_unknown(
    start: Callable[..., Harness], recorder: Callable[[], Recording]
) -> None:
    agg = start(batch_size=100)
    agg.tell(make_context(), *opened(2), *statement_events()[:2])
    notify = recorder()
    agg.ref.tell(Drain(deadline_s=0.0, notify=notify.ref))
    agg.ref.tell(Abandon())

    final = snapshot_json(notify.wait_for(Drained)[0].snapshot)
    assert final["dropped"] == {"flag_unknown": 4}
    assert final["balanced"]
    assert agg.batches() == []
    assert agg.exporter.of_type(Drain) == []


def test_abandon_counts_events_still_in_export_as_shutdown_timeout(
    start: Callable[..., Harness], recorder: Callable[[], Recording]
) -> None:
    agg = start(batch_size=100)
    agg.flag(True)
    agg.tell(make_context(), *opened(3))
    notify = recorder()
    agg.ref.tell(Drain(deadline_s=0.0, notify=notify.ref))
    agg.exporter.wait_for(Drain)
    (batch,) = agg.exporter.of_type(ExportBatch)

    agg.ref.tell(Abandon())
    final = snapshot_json(notify.wait_for(Drained)[0].snapshot)
    assert final["dropped"] == {"shutdown_timeout": 3}
    assert final["pending"] == 0
    assert final["balanced"]

    agg.settle(batch)  # too late: already counted
    agg.ref.tell(Drained())
    state = agg.snapshot()
    assert (state["exported"], state["dropped"]) == (0, {"shutdown_timeout": 3})
    assert len(notify.of_type(Drained)) == 1


def test_exporter_drop_reasons_are_carried_into_the_accounts(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=2)
    agg.flag(True)
    agg.tell(make_context(), *opened(4))
    first, second = agg.exporter.wait_for(ExportBatch, count=2)

    agg.settle(first, breaker_open=2)
    agg.ref.tell(
        BatchSettled(
            batch_id=second.batch_id,
            exported_events=1,
            exported_logs=1,
            dropped={"partial_rejected": 1},
        )
    )
    state = agg.snapshot()
    assert state["exported"] == 1
    assert state["dropped"] == {"breaker_open": 2, "partial_rejected": 1}
    assert state["pending"] == 0


# --- handler bugs -------------------------------------------------------------------------------


def test_a_handler_bug_is_counted_and_the_actor_keeps_working(
    start: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: AggregatorActor, settled: BatchSettled) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(AggregatorActor, "_on_settled", broken)
    agg = start()
    agg.flag(True)
    context = make_context()
    agg.tell(context, ev.ConnectionOpened(session_id="s-1"))
    (batch,) = agg.exporter.wait_for(ExportBatch)
    agg.settle(batch)

    state = agg.snapshot()
    assert state["handler_errors"] == 1
    agg.tell(context, ev.ConnectionOpened(session_id="s-2"))
    agg.exporter.wait_for(ExportBatch, count=2)
    assert agg.ref.is_alive()


def test_a_handler_bug_on_an_event_keeps_the_accounts_balanced(
    start: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build_log = aggregator_module.build_log

    def flaky_build_log(context: Any, kind: Any, log: SqlDriverLog, now_ms: int) -> Any:
        if log.session_id == "poison":
            raise RuntimeError("bug")
        return real_build_log(context, kind, log, now_ms)

    monkeypatch.setattr(aggregator_module, "build_log", flaky_build_log)
    agg = start(batch_size=100)
    agg.flag(True)
    context = make_context()
    agg.tell(context, *opened(1), ev.ConnectionOpened(session_id="poison"), *opened(1))

    state = agg.snapshot()  # asserts balanced
    assert state["handler_errors"] == 1
    assert state["dropped"] == {"handler_error": 1}
    assert state["queued_logs"] == 2


# --- the one bound on unsettled batches -----------------------------------------------------------


def test_flush_past_a_rate_limit_sends_every_queued_log_and_drops_none(
    tmp_path: pathlib.Path,
) -> None:
    settings = TelemetrySettings(
        sink="file",
        file_path=str(tmp_path / "logs.jsonl"),
        batch_size=1,
        max_pending_batches=1,
        rate_limit_burst=1,
        rate_limit_per_s=0.01,  # one request per 100 s: only a flush gets the rest out
        flush_interval_ms=60_000,
    )
    connection = actors.connect("probe.example.com", driver=DRIVER, settings=settings)
    try:
        for i in range(8):
            assert connection.tell(ev.ConnectionOpened(session_id=f"s-{i}"))

        def held_back() -> dict[str, Any] | None:
            host = actors.dump_state()["hosts"][connection.host]
            accounting, aggregator = host["accounting"], host["aggregator"]
            settled_one = accounting["exported"] == 1 and aggregator["queued_logs"] == 6
            return accounting if settled_one else None

        poll_until(held_back, 5.0, "one log sent and six held back by the batch bound")
        assert actors.flush(5.0) is True
        accounting = actors.dump_state()["hosts"][connection.host]["accounting"]
        assert accounting["dropped"] == {}
        assert (accounting["told"], accounting["exported"], accounting["pending"]) == (8, 8, 0)
    finally:
        connection.close()
        actors.shutdown(2.0)


def test_unsettled_batches_never_exceed_the_bound_even_during_a_flush(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=1, max_pending_batches=2)
    agg.flag(True)
    agg.tell(make_context(), *opened(5))
    assert len(agg.batches()) == 2
    reply = pykka.ThreadingFuture[Any]()
    agg.ref.tell(Flush(reply=reply))
    assert len(agg.batches()) == 2  # the flush waits for room instead of overflowing the bound
    assert agg.snapshot()["queued_logs"] == 3

    for settled in range(5):
        batches = agg.batches()
        assert len(batches) - settled <= 2
        agg.settle(batches[settled])
    state = agg.snapshot()
    assert (state["exported"], state["dropped"], state["pending"]) == (5, {}, 0)
    kinds = [type(m) for m in agg.exporter.messages if not isinstance(m, Flush) or m.reply]
    assert kinds == [ExportBatch] * 5 + [Flush]  # passed on once nothing is left queued here
    assert [m.reply for m in agg.exporter.of_type(Flush) if m.reply] == [reply]
