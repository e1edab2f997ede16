"""Every driver of the matrix gives the same results and exceptions raw and instrumented, and the
instrumented side tells a consistent account of what it ran (checked on a recording)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from messages.events import ConnectionClosed, ConnectionOpened, ErrorOccurred, StatementSummary

from .checks import MARKER, STANDARD_CHECKS, Check
from .checks_beyond import BEYOND_CHECKS
from .conftest import DRIVERS, FEATURES, Env, OpenConnections, Pair, Recording


def outcome(check: Check, db: Any, env: Env) -> tuple[Any, ...]:
    """What a check produced: its value, or what it raised (type, message, chaining)."""
    try:
        return ("returned", check(db, env))
    except Exception as exc:
        message = exc.name if isinstance(exc, AttributeError) else str(exc)
        return (
            "raised",
            type(exc),
            message,
            exc.args if not isinstance(exc, AttributeError) else (),
            type(exc.__cause__),
            type(exc.__context__),
        )


def assert_told_consistently(recordings: list[Recording]) -> None:
    """Per telemetry connection: opened first, closed last and released; every statement told
    once, as one summary of this session, ended by a completion or by a terminal error; no SQL
    text or parameter value outside the driver's own error messages."""
    for recording in recordings:
        events = recording.events
        assert events, "a telemetry connection told nothing"
        if isinstance(events[0], ErrorOccurred):  # a failed connect
            assert len(events) == 1 and recording.closed
            continue
        assert isinstance(events[0], ConnectionOpened)
        assert isinstance(events[-1], ConnectionClosed)
        assert recording.closed
        session_id = events[0].session_id
        told: set[str] = set()
        for event in events[1:-1]:
            match event:
                case StatementSummary(statement_id=sid):
                    assert event.session_id == session_id
                    assert sid not in told
                    told.add(sid)
                    assert event.chunks >= 0
                    assert event.total_chunks_present in (None, event.chunks)
                    error = event.error
                    assert event.completed == (error is None or bool(error.retryable))
                    if error is not None:
                        assert (error.statement_id, error.session_id) == (sid, session_id)
                case ErrorOccurred():
                    assert event.session_id == session_id and event.statement_id is None
                case _:
                    pytest.fail(f"unexpected event {event!r}")
            if isinstance(event, StatementSummary):  # the driver's own message may hold it
                event = attrs.evolve(event, error=None)
            if not isinstance(event, ErrorOccurred):
                assert MARKER not in repr(event)


CHECKS = STANDARD_CHECKS + BEYOND_CHECKS
# Every check on every driver that has what it needs (what no driver of the matrix lacks runs on
# all four, absent methods included).
CASES = [
    pytest.param(name, check, id=f"{name}-{check.__name__.removeprefix('check_')}")
    for name in DRIVERS
    for check in CHECKS
    if getattr(check, "feature", None) in (None, *FEATURES[name])
]


# `instrument_connection` always gives the generic wrapper, which psycopg2's helpers refuse
# (written down in the README): the composed-query check hands it to `as_string`.
OPEN_CASES = [case for case in CASES if case.id != "psycopg2-composed_queries"]


@pytest.mark.parametrize(("pair", "check"), OPEN_CASES, indirect=["pair"])
def test_an_open_connection_wrapped_gives_the_same_results_and_exceptions(
    pair: Pair, check: Check
) -> None:
    expected = outcome(check, pair.module, pair.raw)
    actual = outcome(check, OpenConnections(pair.module), pair.wrapped)
    assert actual == expected
    assert_told_consistently(pair.recordings)


def _refuse(self: Recording, event: object) -> bool:
    """A telemetry connection that takes connection events and raises at everything else."""
    if isinstance(event, ConnectionOpened | ConnectionClosed):
        return True
    raise RuntimeError("a telemetry connection that raises")


@pytest.mark.parametrize("telemetry", ["telemetry_on", "telemetry_off", "telemetry_raising"])
@pytest.mark.parametrize(("pair", "check"), CASES, indirect=["pair"])
def test_the_instrumented_driver_gives_the_same_results_and_exceptions(
    pair: Pair, check: Check, telemetry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if telemetry == "telemetry_off":  # the flag says no: statements are not even started
        monkeypatch.setattr(Recording, "enabled", False)
    if telemetry == "telemetry_raising":  # hostile: nothing of it may reach the driver's caller
        monkeypatch.setattr(Recording, "tell", _refuse)
    expected = outcome(check, pair.module, pair.raw)
    actual = outcome(check, pair.db, pair.wrapped)
    assert actual == expected
    if telemetry == "telemetry_raising":
        return
    assert pair.recordings, "the instrumented side told nothing"
    assert_told_consistently(pair.recordings)
    if telemetry == "telemetry_off":
        assert not [e for e in pair.events() if isinstance(e, StatementSummary)]
