"""CircuitBreaker: consecutive failures open it; one probe at a time while half-open."""

from __future__ import annotations

import json

import pytest

from actors._export.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from messages.snapshots import to_json


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=5, open_s=60.0, success_threshold=2, clock=clock)


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state afresh (keeps type checkers from narrowing it across calls)."""
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def open_then_wait(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 5)
    clock.advance(60.0)


def test_breaker_starts_closed_and_allows_calls(breaker: CircuitBreaker) -> None:
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_breaker_stays_closed_after_four_of_five_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 4)
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_breaker_opens_after_five_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 5)
    assert state(breaker) is BreakerState.OPEN
    assert breaker.transitions == {"CLOSED->OPEN": 1}


def test_breaker_rejects_calls_while_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 5)
    clock.advance(59.9)
    assert not breaker.allow()
    assert not breaker.allow()
    assert state(breaker) is BreakerState.OPEN


def test_breaker_success_resets_consecutive_failures_when_closed(
    breaker: CircuitBreaker,
) -> None:
    fail(breaker, 4)
    breaker.record_success()
    fail(breaker, 4)
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.snapshot().consecutive_failures == 4


def test_breaker_grants_a_probe_in_half_open_once_open_time_has_passed(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_then_wait(breaker, clock)
    assert state(breaker) is BreakerState.OPEN  # state only reports; allow() moves it
    assert breaker.allow()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.transitions["OPEN->HALF_OPEN"] == 1


def test_breaker_allows_only_one_probe_at_a_time_in_half_open(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_then_wait(breaker, clock)
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.allow()
    assert not breaker.allow()


def test_breaker_closes_after_two_half_open_successes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_then_wait(breaker, clock)
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()
    snap = breaker.snapshot()
    assert snap.consecutive_failures == 0
    assert snap.half_open_successes == 0
    assert breaker.transitions == {"CLOSED->OPEN": 1, "OPEN->HALF_OPEN": 1, "HALF_OPEN->CLOSED": 1}


def test_breaker_reopens_on_any_half_open_failure_with_a_fresh_timer(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_then_wait(breaker, clock)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    clock.advance(59.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.snapshot().half_open_successes == 0  # earlier success does not carry over
    assert breaker.transitions["HALF_OPEN->OPEN"] == 1


def test_breaker_release_frees_the_probe_without_an_outcome(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_then_wait(breaker, clock)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_breaker_ignores_late_outcomes_while_open(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 5)
    clock.advance(30.0)
    breaker.record_failure()
    breaker.record_success()
    clock.advance(30.0)
    assert breaker.allow()  # the late failure did not restart the open timer


def test_breaker_snapshot_is_json_serialisable_and_reports_open_times(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 5)
    clock.advance(20.0)
    snap = to_json(breaker.snapshot())
    assert json.loads(json.dumps(snap)) == snap
    assert snap["state"] == "OPEN"
    assert snap["opened_for_s"] == 20.0
    assert snap["reopens_in_s"] == 40.0
    assert snap["probe_outstanding"] is False
    assert snap["transitions"] == {"CLOSED->OPEN": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0, "open_s": 1.0, "success_threshold": 1}, "failure_threshold"),
        ({"failure_threshold": 1, "open_s": -1.0, "success_threshold": 1}, "open_s"),
        ({"failure_threshold": 1, "open_s": float("nan"), "success_threshold": 1}, "open_s"),
        ({"failure_threshold": 1, "open_s": 1.0, "success_threshold": 0}, "success_threshold"),
    ],
)
def test_breaker_rejects_invalid_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_a_restored_open_breaker_stays_open_for_the_rest_of_its_period(clock: FakeClock) -> None:
    first = CircuitBreaker(failure_threshold=2, open_s=60.0, success_threshold=1, clock=clock)
    fail(first, 2)
    clock.advance(45.0)
    handed_over = first.snapshot()
    second = CircuitBreaker(failure_threshold=2, open_s=60.0, success_threshold=1, clock=clock)
    second.restore(handed_over)
    assert second.state is BreakerState.OPEN and not second.allow()
    assert second.transitions == {"CLOSED->OPEN": 1}
    clock.advance(15.0)
    assert second.allow() and second.state is BreakerState.HALF_OPEN


def test_a_restored_half_open_breaker_grants_a_fresh_probe_at_once(clock: FakeClock) -> None:
    snapshot = BreakerSnapshot(state=BreakerState.HALF_OPEN, consecutive_failures=3)
    breaker = CircuitBreaker(failure_threshold=2, open_s=60.0, success_threshold=1, clock=clock)
    breaker.restore(snapshot)
    assert breaker.snapshot().consecutive_failures == 3
    assert breaker.allow() and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
