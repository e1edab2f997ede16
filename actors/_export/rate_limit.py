"""Token bucket that paces exports without ever sleeping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """Token bucket refilled at ``rate_per_s`` up to ``burst`` tokens; starts full.

    Not thread-safe by design: one actor owns it. ``try_acquire()`` never blocks; it says how
    long to wait so the owner can schedule a later message instead of sleeping.
    """

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Reject explicitly invalid settings at once, before any thread uses the bucket."""
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_per_s must be a finite number > 0, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._rate_per_s = float(rate_per_s)
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._granted = 0
        self._denied = 0

    def try_acquire(self) -> float:
        """Take one token and return 0.0, or return the seconds until one is available."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._granted += 1
            return 0.0
        self._denied += 1
        return (1.0 - self._tokens) / self._rate_per_s

    def snapshot(self) -> dict[str, object]:
        """Return a JSON-serialisable view of the bucket for diagnostics."""
        self._refill()
        return {
            "tokens": round(self._tokens, 3),
            "rate_per_s": self._rate_per_s,
            "burst": self._burst,
            "granted": self._granted,
            "denied": self._denied,
        }

    def _refill(self) -> None:
        now = self._clock()
        # A clock that steps backwards must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self._burst), self._tokens + elapsed * self._rate_per_s)
