"""A `StatementSummary` folds into exactly the log its statement's events would have made.

The same statement facts (drawn at random) are told two ways to two `Folder`s: as the events a
driver tells one by one (start, polls, chunks, an error held or terminal, completion) and as the
one summary the PEP 249 wrapper tells; the logs, and their encoded wire bytes, must be equal.
A summary is validated like any other event, the error inside it as an event.
"""

from __future__ import annotations

import collections
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors._aggregate import statements as statements_module
from actors._aggregate.folding import Folder
from actors._aggregate.ledger import Ledger
from actors._aggregate.statements import build_log
from actors._aggregate.validation import invalid_reason
from messages import events as ev
from messages.commands import ConnectionContext
from messages.encode import encode_frontend_log
from messages.enums import ExecutionResultFormat, OperationType, StatementType
from messages.records import SystemConfiguration

CONTEXT = ConnectionContext(
    connection_id=1,
    host="example.com",
    auth=None,
    user_agent="Summary/1.0",
    system_configuration=SystemConfiguration(driver_name="summary", driver_version="1.0"),
)
SID = "9946607f-6da7-4edd-bd17-00dda3e7f129"
SESSION = "5e55a0b2-0000-4000-8000-000000000001"

# Few distinct values, so that two statements often agree on all but one fact.
latency = st.sampled_from([0.0, 0.4, 0.6, 1.49, 1.5, 2.0]) | st.floats(0.0, 1e6)
maybe_latency = st.none() | latency


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    """One statement's facts: kinds, polls, chunks, an error, and whether it completed."""
    error = draw(
        st.none()
        | st.builds(
            ev.ErrorOccurred,
            error_name=st.sampled_from(["OperationalError", "IntegrityError"]),
            message=st.sampled_from(["", "near 'x': syntax error", "timeout after 30 s"]),
            error_code=st.none() | st.sampled_from(["42601", "HY000"]),
            statement_id=st.just(SID),
            session_id=st.just(SESSION),
            retryable=st.booleans(),
        )
    )
    return {
        "statement_type": draw(st.sampled_from(StatementType)),
        "operation_type": draw(st.sampled_from(OperationType)),
        "polls": draw(st.lists(latency, max_size=3)),
        "chunks": draw(
            st.lists(st.tuples(latency, st.integers(0, 2**40), st.booleans()), max_size=4)
        ),
        "error": error,
        "completion": {
            "execution_result": draw(st.sampled_from(ExecutionResultFormat)),
            "retry_count": draw(st.integers(0, 5)),
            "result_ready_latency_ms": draw(maybe_latency),
            "consumption_latency_ms": draw(maybe_latency),
            "operation_latency_ms": draw(maybe_latency),
            "total_chunks_present": draw(st.none() | st.integers(0, 10)),
        },
    }


def as_events(facts: dict[str, Any]) -> list[object]:
    told: list[object] = [
        ev.StatementStarted(
            statement_id=SID,
            session_id=SESSION,
            statement_type=facts["statement_type"],
            operation_type=facts["operation_type"],
        )
    ]
    told += [ev.OperationPolled(statement_id=SID, latency_ms=ms) for ms in facts["polls"]]
    told += [
        ev.ChunkDownloaded(
            statement_id=SID, chunk_index=i, latency_ms=ms, size_bytes=size, compressed=packed
        )
        for i, (ms, size, packed) in enumerate(facts["chunks"])
    ]
    error = facts["error"]
    if error is not None:
        told.append(error)
    if error is None or error.retryable:  # a terminal error ends the statement by itself
        told.append(ev.StatementCompleted(statement_id=SID, **facts["completion"]))
    return told


def as_summary(facts: dict[str, Any]) -> ev.StatementSummary:
    chunks = facts["chunks"]
    latencies = [ms for ms, _, _ in chunks]
    error = facts["error"]
    return ev.StatementSummary(
        statement_id=SID,
        session_id=SESSION,
        statement_type=facts["statement_type"],
        operation_type=facts["operation_type"],
        completed=error is None or bool(error.retryable),
        polls=len(facts["polls"]),
        poll_latency_ms=sum(facts["polls"]),
        chunks=len(chunks),
        first_chunk_latency_ms=latencies[0] if chunks else 0.0,
        slowest_chunk_latency_ms=max(latencies, default=0.0),
        chunks_latency_ms=sum(latencies),
        size_bytes=sum(size for _, size, _ in chunks),
        compressed=any(packed for _, _, packed in chunks),
        error=error,
        **facts["completion"],
    )


def fold(told: list[object]) -> list[Any]:
    ledger = Ledger()
    folder = Folder(ledger, 100, collections.Counter())
    out = []
    for event in told:
        assert invalid_reason(event) is None
        ledger.receive()
        out += folder.fold(CONTEXT, event)
    assert folder.statements == {}  # nothing left open
    assert ledger.accounts().pending == sum(e.events for e in out if e.held)
    return out


@given(statements())
def test_a_summary_makes_the_very_log_its_events_make(facts: dict[str, Any]) -> None:
    (from_events,) = fold(as_events(facts))
    (from_summary,) = fold([as_summary(facts)])
    assert (from_summary.kind, from_summary.log) == (from_events.kind, from_events.log)
    assert from_summary.events == 1 and not from_summary.held  # one told event, never held
    wire = [
        encode_frontend_log(
            attrs.evolve(build_log(CONTEXT, e.kind, e.log, 1), frontend_log_event_id="id")
        )
        for e in (from_events, from_summary)
    ]
    assert wire[0] == wire[1]


@given(statements(), statements(), st.data())
def test_a_shared_sql_operation_is_the_one_the_statement_would_have_made(
    first: dict[str, Any], other: dict[str, Any], data: st.DataObject
) -> None:
    """The aggregator shares equal `sql_operation` records between statements; whatever came
    before, a statement's log is the one it makes when nothing is shared. The second statement
    is the first with one fact taken from another."""
    second = {**first, "completion": dict(first["completion"])}
    fact = data.draw(st.sampled_from([*first.keys(), *first["completion"].keys()]))
    if fact in first:
        second[fact] = other[fact]
    else:
        second["completion"][fact] = other["completion"][fact]
    fold([as_summary(first)])
    (shared,) = fold([as_summary(second)])
    statements_module._OPERATIONS.clear()
    (alone,) = fold([as_summary(second)])
    assert shared.log == alone.log


BASE = ev.StatementSummary(
    statement_id=SID,
    session_id=SESSION,
    execution_result=ExecutionResultFormat.INLINE_ARROW,
    retry_count=1,
    result_ready_latency_ms=5.0,
    consumption_latency_ms=6.0,
    operation_latency_ms=7.0,
    total_chunks_present=2,
    polls=1,
    poll_latency_ms=2.0,
    chunks=2,
    first_chunk_latency_ms=1.0,
    slowest_chunk_latency_ms=3.0,
    chunks_latency_ms=4.0,
    compressed=True,
)
CHANGES = {
    "statement_type": StatementType.UPDATE,
    "operation_type": OperationType.LIST_TABLES,
    "completed": False,
    "execution_result": ExecutionResultFormat.EXTERNAL_LINKS,
    "retry_count": 2,
    "result_ready_latency_ms": 50.0,
    "consumption_latency_ms": 60.0,
    "total_chunks_present": None,
    "polls": 3,
    "poll_latency_ms": 20.0,
    "chunks": 1,
    "first_chunk_latency_ms": 1.6,
    "slowest_chunk_latency_ms": 3.6,
    "chunks_latency_ms": 4.6,
    "compressed": False,
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_statements_differing_in_one_exported_fact_never_share_a_sql_operation(
    field: str,
) -> None:
    fold([BASE])
    (changed,) = fold([attrs.evolve(BASE, **{field: CHANGES[field]})])
    statements_module._OPERATIONS.clear()
    (alone,) = fold([attrs.evolve(BASE, **{field: CHANGES[field]})])
    assert changed.log == alone.log
    assert changed.log.sql_operation != fold([BASE])[0].log.sql_operation


def test_a_summary_with_a_bad_field_or_a_bad_error_inside_is_invalid() -> None:
    good = as_summary(
        {
            "statement_type": StatementType.QUERY,
            "operation_type": OperationType.EXECUTE_STATEMENT,
            "polls": [],
            "chunks": [],
            "error": None,
            "completion": {},
        }
    )
    assert invalid_reason(good) is None
    assert invalid_reason(attrs.evolve(good, chunks=-1)) == "chunks"
    assert invalid_reason(attrs.evolve(good, chunks_latency_ms=float("nan"))) == (
        "chunks_latency_ms"
    )
    nameless = ev.ErrorOccurred(error_name="", statement_id=SID)
    assert invalid_reason(attrs.evolve(good, error=nameless)) == "error"  # checked as an event
    assert invalid_reason(attrs.evolve(good, error="boom")) == "error"
