"""The compiled event checks say exactly what the rules say, field by field, on fuzzed events.

`validation.rules()` is the definition (one check per field, made from the annotations);
`invalid_reason()` runs one function per class compiled from them. Events are built with any
value in any field (bypassing `__init__`, as a careless driver's object could be), fields left
unset included, and both must name the same first bad field, or both none.
"""

from __future__ import annotations

import enum
import signal
import subprocess
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors._aggregate.validation import EVENT_CLASSES, first_bad, invalid_reason
from messages import events as ev
from messages.enums import ExecutionResultFormat, OperationType, StatementType

UNSET = object()


class Shady(str):
    """A str subclass: not an exact str, so never a valid id."""


class Loud(enum.Enum):
    A = 1


values = st.one_of(
    st.just(UNSET),
    st.none(),
    st.sampled_from(["", "x", "q-1", "\ud800", "é", "x" * 256, "x" * 257, "42601", "bad code!"]),
    st.text(max_size=8),
    st.builds(Shady, st.text(max_size=3)),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 99, 100, 599, 600, 2**31 - 1, 2**31, 2**63 - 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e12, 1e12 + 1, -1e-9]),
    st.booleans(),
    st.sampled_from([*StatementType, *OperationType, *ExecutionResultFormat, Loud.A]),
    st.builds(ev.ErrorOccurred, error_name=st.sampled_from(["", "E"]), error_code=st.none()),
    st.builds(object),
)


VALID = [
    ev.ConnectionOpened(session_id="s", latency_ms=1.0),
    ev.ConnectionClosed(session_id="s", latency_ms=1.0),
    ev.StatementStarted(statement_id="q", session_id="s"),
    ev.OperationPolled(statement_id="q", latency_ms=1.0),
    ev.ChunkDownloaded(statement_id="q", chunk_index=0, latency_ms=1.0, size_bytes=1),
    ev.StatementCompleted(statement_id="q", operation_latency_ms=1.0, total_chunks_present=1),
    ev.StatementSummary(statement_id="q", session_id="s", operation_latency_ms=1.0),
    ev.StatementCancelled(statement_id="q"),
    ev.StatementClosed(statement_id="q"),
    ev.ErrorOccurred(error_name="E", error_code="42601", http_status=500, retryable=True),
]


@st.composite
def raw_events(draw: st.DrawFn) -> Any:
    """A valid event of any class with some fields replaced by anything, or left unset."""
    valid = draw(st.sampled_from(VALID))
    event = object.__new__(type(valid))
    for field in attrs.fields(type(valid)):
        value = draw(values) if draw(st.integers(0, 3)) == 0 else getattr(valid, field.name)
        if value is not UNSET:
            object.__setattr__(event, field.name, value)
    return event


def test_every_event_class_is_fuzzed() -> None:
    assert {type(event) for event in VALID} == EVENT_CLASSES
    assert all(invalid_reason(event) is None for event in VALID)


@given(raw_events())
def test_the_compiled_checks_name_the_field_the_rules_name(event: Any) -> None:
    assert invalid_reason(event) == first_bad(event, type(event), in_event=True)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (ev.StatementSummary(statement_id="q", session_id="s"), None),
        (ev.StatementSummary(statement_id="", session_id="s"), "statement_id"),
        (ev.StatementSummary(statement_id="q", session_id="s", size_bytes=-1), "size_bytes"),
        (ev.StatementSummary(statement_id="q", session_id="s", polls=2**31), "polls"),
        (ev.ErrorOccurred(error_name="E", http_status=600), "http_status"),
        (ev.ErrorOccurred(error_name="E", error_code="no spaces"), "error_code"),
        (
            ev.ChunkDownloaded(statement_id="q", chunk_index=0, latency_ms=float("inf")),
            "latency_ms",
        ),
        (
            ev.ChunkDownloaded(statement_id="q", chunk_index=0, latency_ms=1, compressed=1),
            "compressed",
        ),  # type: ignore[arg-type]
        (ev.StatementStarted(statement_id="q", session_id="s\ud800"), "session_id"),
    ],
)
def test_typical_bad_fields_are_named(event: object, reason: str | None) -> None:
    assert invalid_reason(event) == reason == first_bad(event, type(event), in_event=True)


def test_checking_events_while_the_host_exits_keeps_its_keyboard_interrupt_exit_status() -> None:
    """A host that ends with an unhandled KeyboardInterrupt exits by SIGINT; checking events in
    its exit hooks (as an aggregator's drain does) must not turn that into status 1. A check
    compiled from a string at that moment did (it runs as a new top-level program, clearing
    the interpreter's note of the interrupt)."""
    script = (
        "import atexit\n"
        "from actors._aggregate import validation\n"
        "from messages import events as ev\n"
        "def check_late():\n"
        "    validation._CHECKERS.clear()  # as if no event had been checked before the exit\n"
        "    validation.invalid_reason(ev.StatementStarted(statement_id='q', session_id='s'))\n"
        "atexit.register(check_late)\n"
        "raise KeyboardInterrupt\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGINT, done.stderr
