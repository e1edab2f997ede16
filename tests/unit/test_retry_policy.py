"""RetryPolicy without actors: one table for statuses, a new frozen value per retry."""

from __future__ import annotations

import random

import attrs
import pytest

from actors._export.backoff import Backoff
from actors._export.retry import (
    FLAG_FAILURE_HOLD_S,
    BreakerVote,
    RetryPolicy,
    Verdict,
)
from messages.config import TelemetrySettings
from messages.transport import HttpOutcome

TIMEOUT = HttpOutcome(status=None, error="ReadTimeoutError")


def policy(total: int = 3, jitter: float = 0.0) -> RetryPolicy:
    return RetryPolicy(total=total, backoff=Backoff(base_s=0.1, max_s=10.0, jitter=jitter))


def test_success_is_accepted_and_counts_for_the_breaker() -> None:
    decision = policy().decide(HttpOutcome(status=200), random.Random(0))
    assert (decision.verdict, decision.breaker) == (Verdict.ACCEPT, BreakerVote.SUCCESS)


@pytest.mark.parametrize("code", [401, 403])
def test_a_rejected_credential_gives_up_without_blaming_the_host(code: int) -> None:
    decision = policy().decide(HttpOutcome(status=code), random.Random(0))
    assert (decision.verdict, decision.drop_reason) == (Verdict.GIVE_UP, "unauthorized")
    assert decision.breaker is BreakerVote.NONE


@pytest.mark.parametrize("code", [400, 404, 413, 302])
def test_other_terminal_statuses_give_up_as_rejected_and_count_against_the_host(
    code: int,
) -> None:
    decision = policy().decide(HttpOutcome(status=code), random.Random(0))
    assert (decision.verdict, decision.drop_reason) == (Verdict.GIVE_UP, "rejected")
    assert decision.breaker is BreakerVote.FAILURE


@pytest.mark.parametrize("outcome", [HttpOutcome(status=503), HttpOutcome(status=429), TIMEOUT])
def test_retryable_outcomes_retry_with_a_new_policy_value(outcome: HttpOutcome) -> None:
    first = policy()
    decision = first.decide(outcome, random.Random(0))
    assert decision.verdict is Verdict.RETRY
    assert decision.breaker is BreakerVote.NONE
    assert decision.retry is not first and decision.retry.retries == 1
    assert first.retries == 0 and first.history == ()  # the old value never changes
    assert decision.retry.history == (str(outcome.status or outcome.error),)


def test_delays_double_per_retry_until_the_policy_is_exhausted() -> None:
    current, delays = policy(total=3), []
    rng = random.Random(0)
    while True:
        decision = current.decide(HttpOutcome(status=503), rng)
        if decision.verdict is not Verdict.RETRY:
            break
        delays.append(decision.delay_s)
        current = decision.retry
    assert delays == pytest.approx([0.1, 0.2, 0.4])
    assert current.is_exhausted()
    assert (decision.verdict, decision.drop_reason) == (Verdict.GIVE_UP, "export_failed")
    assert decision.breaker is BreakerVote.FAILURE
    assert current.history == ("503", "503", "503")


def test_a_server_retry_after_wins_over_the_backoff_but_is_capped() -> None:
    capped = attrs.evolve(policy(), retry_after_max_s=5.0)
    asked = capped.decide(HttpOutcome(status=429, retry_after_s=3.0), random.Random(0))
    too_long = capped.decide(HttpOutcome(status=429, retry_after_s=600.0), random.Random(0))
    assert (asked.delay_s, too_long.delay_s) == (3.0, 5.0)


def test_a_half_open_probe_is_never_retried() -> None:
    decision = policy().decide(HttpOutcome(status=503), random.Random(0), probe=True)
    assert (decision.verdict, decision.drop_reason) == (Verdict.GIVE_UP, "export_failed")


def test_an_unreadable_success_is_retried_like_a_failure() -> None:
    decision = policy().decide(
        HttpOutcome(status=200, body=b"<html>"), random.Random(0), readable=False
    )
    assert decision.verdict is Verdict.RETRY


def test_zero_retries_is_exhausted_at_once() -> None:
    assert policy(total=0).is_exhausted()
    assert not policy(total=1).is_exhausted()


def test_a_negative_total_is_rejected() -> None:
    with pytest.raises(ValueError):
        policy(total=-1)


def test_from_settings_reads_the_retry_settings() -> None:
    settings = TelemetrySettings(
        max_retries=5, retry_delay_ms=250, retry_max_delay_ms=4000, retry_after_max_s=9
    )
    made = RetryPolicy.from_settings(settings)
    assert (made.total, made.backoff.base_s, made.backoff.max_s) == (5, 0.25, 4.0)
    assert made.retry_after_max_s == 9.0


def test_a_flag_not_found_holds_for_the_ttl_and_other_failures_for_a_minute() -> None:
    missing = policy().decide_flag(HttpOutcome(status=404), readable=False, ttl_s=900)
    broken = policy().decide_flag(HttpOutcome(status=500), readable=False, ttl_s=900)
    garbled = policy().decide_flag(HttpOutcome(status=200), readable=False, ttl_s=900)
    assert (missing.source, missing.delay_s) == ("not_found", 900)
    assert (broken.source, broken.delay_s) == ("fetch_failed", FLAG_FAILURE_HOLD_S)
    assert (garbled.source, garbled.verdict) == ("fetch_failed", Verdict.GIVE_UP)
    accepted = policy().decide_flag(HttpOutcome(status=200), readable=True, ttl_s=900)
    assert accepted.verdict is Verdict.ACCEPT


def test_the_policy_is_a_frozen_value() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy().retries = 2  # type: ignore[misc]
