"""TokenBucket: starts full, refills at its rate, and says how long to wait when empty."""

from __future__ import annotations

import json

import pytest

from actors._export.rate_limit import TokenBucket


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_bucket_starts_full_and_grants_a_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_bucket_when_empty_returns_wait_without_consuming(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=1, clock=clock)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)
    assert bucket.try_acquire() == pytest.approx(0.5)  # a denial took nothing
    clock.now += 0.2
    assert bucket.try_acquire() == pytest.approx(0.3)
    clock.now += 0.3
    assert bucket.try_acquire() == 0.0


def test_bucket_refill_never_exceeds_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=2, clock=clock)
    clock.now += 3600.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() > 0.0


def test_bucket_ignores_a_clock_that_steps_backwards(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=clock)
    assert bucket.try_acquire() == 0.0
    clock.now -= 100.0
    assert bucket.try_acquire() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.try_acquire() == 0.0


def test_bucket_snapshot_counts_grants_and_denials(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=4.0, burst=2, clock=clock)
    for _ in range(5):
        bucket.try_acquire()
    clock.now += 0.125
    snap = bucket.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap == {"tokens": 0.5, "rate_per_s": 4.0, "burst": 2, "granted": 2, "denied": 3}


@pytest.mark.parametrize(
    ("rate_per_s", "burst"),
    [(0.0, 1), (-1.0, 1), (float("nan"), 1), (float("inf"), 1), (1.0, 0)],
)
def test_bucket_rejects_invalid_settings(rate_per_s: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=rate_per_s, burst=burst)
