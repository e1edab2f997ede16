"""Circuit breaker that stops exports while the telemetry endpoint keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable

from messages.snapshots import BreakerSnapshot, BreakerState

__all__ = ["BreakerSnapshot", "BreakerState", "CircuitBreaker"]


class CircuitBreaker:
    """Consecutive-failure breaker with a single-probe half-open state.

    Not thread-safe by design: one actor owns it and touches it only from its own thread.
    Each granted ``allow()`` should be followed by ``record_success()``, ``record_failure()``
    or ``release()`` so that a half-open probe is never left outstanding.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        open_s: float,
        success_threshold: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Reject explicitly invalid settings at once, before any thread uses the breaker."""
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if success_threshold < 1:
            raise ValueError(f"success_threshold must be >= 1, got {success_threshold!r}")
        if not open_s >= 0:  # also rejects NaN
            raise ValueError(f"open_s must be >= 0, got {open_s!r}")
        self._failure_threshold = failure_threshold
        self._success_threshold = success_threshold
        self._open_s = float(open_s)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._half_open_successes = 0
        self._probe_outstanding = False
        self._opened_at: float | None = None
        self.transitions: dict[str, int] = {}

    @property
    def state(self) -> BreakerState:
        """Report the current state; the OPEN -> HALF_OPEN move happens only in ``allow()``."""
        return self._state

    def allow(self) -> bool:
        """Say whether one call may go out now, granting at most one half-open probe."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._open_elapsed_s() < self._open_s:
                return False
            self._move_to(BreakerState.HALF_OPEN)
            self._half_open_successes = 0
            self._probe_outstanding = True
            return True
        if self._probe_outstanding:
            return False
        self._probe_outstanding = True
        return True

    def record_success(self) -> None:
        """Count a successful call; enough half-open successes close the breaker."""
        self._probe_outstanding = False
        if self._state is BreakerState.CLOSED:
            self._consecutive_failures = 0
        elif self._state is BreakerState.HALF_OPEN:
            self._half_open_successes += 1
            if self._half_open_successes >= self._success_threshold:
                self._move_to(BreakerState.CLOSED)
                self._consecutive_failures = 0
                self._half_open_successes = 0
                self._opened_at = None
        # A late success while OPEN came from a call granted before opening: ignore it.

    def record_failure(self) -> None:
        """Count a failed call; the threshold in CLOSED or any failure in HALF_OPEN opens."""
        self._probe_outstanding = False
        if self._state is BreakerState.CLOSED:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self._failure_threshold:
                self._open()
        elif self._state is BreakerState.HALF_OPEN:
            self._open()
        # A late failure while OPEN must not extend the open period: ignore it.

    def restore(self, snapshot: BreakerSnapshot) -> None:
        """Continue from another breaker's `snapshot()` (a host's previous actor tree).

        An OPEN breaker stays open for the rest of its period; a HALF_OPEN one resumes as OPEN
        with its period over, so the next `allow()` grants a fresh probe.
        """
        self.transitions = dict(snapshot.transitions)
        self._consecutive_failures = max(0, snapshot.consecutive_failures)
        if snapshot.state is BreakerState.CLOSED:
            return
        opened_for_s = snapshot.opened_for_s or 0.0
        if snapshot.state is BreakerState.HALF_OPEN:
            opened_for_s = self._open_s
        self._state = BreakerState.OPEN
        self._opened_at = self._clock() - max(0.0, opened_for_s)

    def release(self) -> None:
        """Clear an outstanding probe without an outcome (its batch was abandoned)."""
        self._probe_outstanding = False

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's state now, for diagnostics and for the host's next tree."""
        opened_for_s: float | None = None
        reopens_in_s: float | None = None
        if self._state is BreakerState.OPEN:
            elapsed = self._open_elapsed_s()
            opened_for_s = round(elapsed, 3)
            reopens_in_s = round(max(0.0, self._open_s - elapsed), 3)
        return BreakerSnapshot(
            state=self._state,
            consecutive_failures=self._consecutive_failures,
            half_open_successes=self._half_open_successes,
            probe_outstanding=self._probe_outstanding,
            opened_for_s=opened_for_s,
            reopens_in_s=reopens_in_s,
            transitions=tuple(sorted(self.transitions.items())),
        )

    def _open(self) -> None:
        self._move_to(BreakerState.OPEN)
        self._opened_at = self._clock()
        self._half_open_successes = 0

    def _open_elapsed_s(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._clock() - self._opened_at)

    def _move_to(self, new: BreakerState) -> None:
        key = f"{self._state.value}->{new.value}"
        self.transitions[key] = self.transitions.get(key, 0) + 1
        self._state = new
