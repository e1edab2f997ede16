"""Backoff and Retry-After: delays grow, stay within their caps, and honour the server."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors._export.backoff import Backoff, parse_retry_after

NOW = 1_755_000_000.0


def test_backoff_without_jitter_doubles_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0, jitter=0.0)
    rng = random.Random(1)
    delays = [backoff.delay_s(attempt, rng) for attempt in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_with_jitter_doubles_the_nominal_delay_exactly_for_a_seeded_rng() -> None:
    backoff = Backoff(base_s=0.1, max_s=100.0, jitter=0.5)
    delays = [backoff.delay_s(attempt, random.Random(3)) for attempt in range(5)]
    # The same seed draws the same jitter factor each time: only the doubling differs.
    factor = 0.5 + random.Random(3).random()
    assert delays == pytest.approx([0.1 * factor * 2**attempt for attempt in range(5)])
    assert [b / a for a, b in itertools.pairwise(delays)] == pytest.approx([2.0] * 4)


def test_backoff_jitter_spreads_delays_within_half_either_side() -> None:
    backoff = Backoff(base_s=1.0, max_s=100.0, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay_s(2, rng) for _ in range(500)]
    assert all(2.0 <= d <= 6.0 for d in delays)
    assert min(delays) < 2.5 and max(delays) > 5.5
    assert len(set(delays)) > 400


def test_backoff_same_seed_gives_same_delays() -> None:
    backoff = Backoff(base_s=0.5, max_s=30.0)
    first = [backoff.delay_s(a, random.Random(42)) for a in range(5)]
    second = [backoff.delay_s(a, random.Random(42)) for a in range(5)]
    assert first == second


def test_backoff_survives_absurd_attempt_numbers() -> None:
    backoff = Backoff(base_s=0.1, max_s=5.0, jitter=0.0)
    assert backoff.delay_s(10_000, random.Random(0)) == 5.0
    assert backoff.delay_s(-3, random.Random(0)) == pytest.approx(0.1)


def test_backoff_retry_after_takes_precedence_over_the_schedule() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0)
    assert backoff.delay_s(0, random.Random(0), retry_after_s=3.0) == 3.0


def test_backoff_retry_after_is_capped_and_never_negative() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0)
    rng = random.Random(0)
    assert backoff.delay_s(0, rng, retry_after_s=3600.0) == 60.0
    assert backoff.delay_s(0, rng, retry_after_s=3600.0, retry_after_max_s=10.0) == 10.0
    assert backoff.delay_s(0, rng, retry_after_s=-5.0) == 0.0
    assert backoff.delay_s(0, rng, retry_after_s=float("inf")) == 60.0


def test_backoff_is_a_frozen_value() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        backoff.base_s = 2.0  # type: ignore[misc]
    assert backoff == Backoff(base_s=0.1, max_s=1.0, jitter=0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": -1.0, "max_s": 1.0},
        {"base_s": 0.1, "max_s": float("nan")},
        {"base_s": 0.1, "max_s": float("inf")},
        {"base_s": 0.1, "max_s": 1.0, "jitter": 1.5},
        {"base_s": 0.1, "max_s": 1.0, "jitter": -0.1},
    ],
)
def test_backoff_rejects_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@given(
    base_s=st.floats(min_value=0.0, max_value=1e6),
    max_s=st.floats(min_value=0.0, max_value=1e6),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempt=st.integers(min_value=-10, max_value=100_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delay_always_within_zero_and_max(
    base_s: float, max_s: float, jitter: float, attempt: int, seed: int
) -> None:
    delay = Backoff(base_s=base_s, max_s=max_s, jitter=jitter).delay_s(attempt, random.Random(seed))
    assert 0.0 <= delay <= max_s


@given(
    retry_after_s=st.floats(allow_nan=False),
    retry_after_max_s=st.floats(min_value=0.0, max_value=1e6),
    attempt=st.integers(min_value=0, max_value=50),
)
def test_backoff_delay_with_retry_after_always_within_zero_and_its_cap(
    retry_after_s: float, retry_after_max_s: float, attempt: int
) -> None:
    delay = Backoff(base_s=0.1, max_s=1.0).delay_s(
        attempt, random.Random(0), retry_after_s, retry_after_max_s
    )
    assert 0.0 <= delay <= retry_after_max_s


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_parse_retry_after_reads_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_reads_an_http_date_relative_to_now() -> None:
    when = datetime.fromtimestamp(NOW + 30, tz=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == pytest.approx(30.0)


def test_parse_retry_after_treats_a_past_http_date_as_retry_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-1", "soon", "nan", "inf", "1e999", "Wed, 99 Foo 2015", "\x00\xff"],
)
def test_parse_retry_after_returns_none_for_garbage(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@given(st.text(max_size=64))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0.0
