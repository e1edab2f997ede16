"""The aggregator's plain parts, without actors: ledger, accounts, validation, folding, queue."""

from __future__ import annotations

import collections
import math
from typing import Any

import pytest

from actors._aggregate.batching import ExportQueue
from actors._aggregate.folding import Folder
from actors._aggregate.ledger import Ledger, Place
from actors._aggregate.statements import build_log
from actors._aggregate.validation import invalid_reason
from messages import events as ev
from messages.accounts import Accounts, snapshot_json
from messages.commands import BatchSettled, ConnectionContext
from messages.config import TelemetrySettings
from messages.enums import StatementType
from messages.privacy import LogKind
from messages.records import DriverConnectionParams, HostInfo, SqlDriverLog

CONTEXT = ConnectionContext(
    connection_id=1, host="h", auth=None, user_agent="T/1", system_configuration=None
)


# --- ledger -------------------------------------------------------------------------------------


def test_a_summary_item_is_received_held_moved_and_exported_with_its_event_count() -> None:
    ledger = Ledger()
    ledger.receive(5)  # one item standing for a statement's five events
    assert (ledger.unplaced, ledger.balanced) == (5, False)
    ledger.hold(Place.OPEN, 5)
    ledger.move(Place.OPEN, Place.QUEUED, 5)
    ledger.move(Place.QUEUED, Place.IN_EXPORT, 5)
    assert ledger.balanced and ledger.pending == 5
    ledger.export(3)
    ledger.drop("partial_rejected", 2, Place.IN_EXPORT)

    assert ledger.accounts() == Accounts(
        received=5, exported=3, dropped=(("partial_rejected", 2),), pending=0
    )
    assert ledger.pending_detail() == {
        "open_statement_events": 0,
        "queued_events": 0,
        "in_export_events": 0,
    }


def test_dropping_what_is_unplaced_after_a_bug_balances_the_ledger() -> None:
    ledger = Ledger()
    ledger.receive(3)
    ledger.hold(Place.QUEUED)
    assert ledger.drop_unplaced("handler_error") == 2
    assert ledger.balanced
    assert ledger.drop_unplaced("handler_error") == 0
    assert ledger.accounts().dropped == (("handler_error", 2),)


# --- accounts -----------------------------------------------------------------------------------


def test_accounts_add_up_by_reason_and_say_whether_they_balance() -> None:
    first = Accounts.of(received=5, exported=2, dropped={"queue_full": 1, "x": 0}, pending=2)
    second = Accounts.of(
        received=3, exported=1, dropped={"queue_full": 1, "flag_off": 1}, pending=0
    )
    total = first.plus(second)

    assert first.dropped == (("queue_full", 1),)
    assert total == Accounts(
        received=8, exported=3, dropped=(("flag_off", 1), ("queue_full", 2)), pending=2
    )
    assert total.balanced and total.dropped_of("queue_full") == 2
    assert not Accounts(received=1).balanced


def test_a_snapshot_shows_its_accounts_as_the_json_keys_dump_state_always_had() -> None:
    accounts = Accounts(received=2, exported=1, dropped=(("flag_off", 1),), pending=0)
    shown = snapshot_json({"accounts": accounts, "queued_logs": 0})
    assert shown == {
        "received": 2,
        "exported": 1,
        "dropped": {"flag_off": 1},
        "pending": 0,
        "balanced": True,
        "queued_logs": 0,
    }
    assert snapshot_json({"timed_out": True}) == {"timed_out": True}


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an event", "type"),
        (ev.OperationPolled(statement_id="st", latency_ms=math.nan), "latency_ms"),
        (ev.OperationPolled(statement_id="st", latency_ms=True), "latency_ms"),  # type: ignore[arg-type]
        (ev.StatementStarted(statement_id="", session_id="s"), "statement_id"),
        (
            ev.StatementStarted(statement_id="st", session_id="s", statement_type="Q"),
            "statement_type",
        ),  # type: ignore[arg-type]
        (ev.ChunkDownloaded(statement_id="st", chunk_index=-1, latency_ms=1.0), "chunk_index"),
        (ev.ErrorOccurred(error_name="E", http_status=99), "http_status"),
        (ev.ConnectionClosed(session_id=None), "session_id"),  # type: ignore[arg-type]
        (
            ev.ConnectionOpened(
                session_id="s",
                connection_params=DriverConnectionParams(host_info=HostInfo(port=-1)),
            ),
            "connection_params",
        ),
    ],
)
def test_an_invalid_event_is_named_by_its_first_bad_field(event: object, reason: str) -> None:
    assert invalid_reason(event) == reason


def test_an_event_made_without_init_is_invalid_not_a_crash() -> None:
    event = object.__new__(ev.ErrorOccurred)
    assert invalid_reason(event) == "error_name"


@pytest.mark.parametrize(
    "event",
    [
        ev.ConnectionOpened(session_id="s", latency_ms=3),
        ev.ErrorOccurred(error_name="E", message=None),  # type: ignore[arg-type]
        ev.ChunkDownloaded(statement_id="st", chunk_index=0, latency_ms=0.0, size_bytes=2**40),
        ev.StatementCompleted(statement_id="st", total_chunks_present=3),
    ],
)
def test_well_formed_events_pass(event: object) -> None:
    assert invalid_reason(event) is None


# --- folding ------------------------------------------------------------------------------------


def test_a_statement_holds_its_events_open_until_it_completes() -> None:
    ledger, stats = Ledger(), collections.Counter[str]()
    folder = Folder(ledger, 10, stats)
    for event in (
        ev.StatementStarted(statement_id="st", session_id="s", statement_type=StatementType.QUERY),
        ev.OperationPolled(statement_id="st", latency_ms=1.0),
        ev.ErrorOccurred(error_name="Busy", http_status=503, statement_id="st"),  # retryable
    ):
        ledger.receive()
        assert folder.fold(CONTEXT, event) == []
    assert ledger.held(Place.OPEN) == 3 and ledger.balanced

    ledger.receive()
    (emitted,) = folder.fold(CONTEXT, ev.StatementCompleted(statement_id="st"))
    assert (emitted.kind, emitted.events, emitted.held) == (LogKind.ERROR, 4, True)
    assert folder.statements == {}


def test_the_oldest_open_statement_is_emitted_early_when_the_bound_is_reached() -> None:
    ledger, stats = Ledger(), collections.Counter[str]()
    folder = Folder(ledger, 1, stats)
    ledger.receive(2)
    folder.fold(CONTEXT, ev.StatementStarted(statement_id="a", session_id="s"))
    (early,) = folder.fold(CONTEXT, ev.StatementStarted(statement_id="b", session_id="s"))
    assert early.log.sql_statement_id == "a" and stats["evicted_early"] == 1
    assert list(folder.statements) == ["b"]


# --- the export queue ---------------------------------------------------------------------------


def _log(n: int) -> Any:
    return build_log(CONTEXT, LogKind.CONNECTION, SqlDriverLog(session_id=f"s-{n}"), 0)


def test_the_export_queue_hands_out_at_most_max_pending_batches() -> None:
    ledger = Ledger()
    queue = ExportQueue(ledger, TelemetrySettings(batch_size=1, max_pending_batches=2))
    for n in range(3):
        ledger.receive()
        assert queue.add(CONTEXT, _log(n), 1, held=False)

    first = queue.take(reply_to=None)  # type: ignore[arg-type]
    assert len(first) == 2 and queue.take(reply_to=None) == []  # type: ignore[arg-type]
    settled = BatchSettled(
        batch_id=first[0].batch_id, exported_events=1, exported_logs=1, dropped={}
    )
    assert queue.settle(settled) is True
    assert queue.settle(settled) is False  # a batch settles once
    assert len(queue.take(reply_to=None)) == 1  # type: ignore[arg-type]
    assert ledger.balanced and ledger.held(Place.IN_EXPORT) == 2


def test_a_full_export_queue_drops_a_statement_from_where_it_was_held() -> None:
    ledger = Ledger()
    queue = ExportQueue(ledger, TelemetrySettings(max_queued_logs=1))
    ledger.receive(3)
    ledger.hold(Place.OPEN, 2)
    assert queue.add(CONTEXT, _log(0), 1, held=False)
    assert not queue.add(CONTEXT, _log(1), 2, held=True)
    assert ledger.held(Place.OPEN) == 0 and ledger.balanced
    assert ledger.accounts().dropped == (("queue_full", 2),)
