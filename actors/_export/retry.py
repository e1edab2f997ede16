"""The one retry and status policy: what an HTTP outcome means, and what to do next.

Like urllib3's `Retry`, a `RetryPolicy` is a frozen value: `decide()` never changes it but returns
a `Decision` that carries the policy for the next attempt (one more retry used, the outcome in
its history). The exporter and the flag fetcher only act on decisions; neither reads a status.
"""

from __future__ import annotations

import enum
import random

import attrs

from actors._export.backoff import Backoff
from actors._export.classify import ErrorKind, classify_status
from messages.config import TelemetrySettings
from messages.transport import HttpOutcome

__all__ = [
    "CREDENTIAL_STATUSES",
    "FLAG_FAILURE_HOLD_S",
    "BreakerVote",
    "Decision",
    "RetryPolicy",
    "Verdict",
    "error_kind",
]

# One tenant's rejected token says nothing about the host: these never count against its breaker.
CREDENTIAL_STATUSES = frozenset({401, 403})
# After a flag fetch failed, the flag is off for this long before it is asked again.
FLAG_FAILURE_HOLD_S = 60.0


def error_kind(outcome: HttpOutcome) -> ErrorKind | None:
    """None when ok; RETRYABLE for transport errors; else the status classification.

    Redirects (and other non-error statuses) are TERMINAL: they are never followed, so asking
    again would get the same answer.
    """
    if outcome.ok:
        return None
    if outcome.retryable is not None:
        return ErrorKind.RETRYABLE if outcome.retryable else ErrorKind.TERMINAL
    if outcome.status is None:
        return ErrorKind.RETRYABLE
    if 400 <= outcome.status < 600:
        return classify_status(outcome.status)
    return ErrorKind.TERMINAL


class Verdict(enum.Enum):
    """What the caller does with the outcome: use it, try again later, or give up."""

    ACCEPT = "ACCEPT"
    RETRY = "RETRY"
    GIVE_UP = "GIVE_UP"


class BreakerVote(enum.Enum):
    """What the outcome tells the host's circuit breaker."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    NONE = "NONE"  # says nothing about the host (a retry under way, a bad credential)


@attrs.frozen(kw_only=True)
class Decision:
    """One decision: the verdict, the drop reason when giving up, and when to ask again.

    `delay_s` is the wait before the retry (RETRY), or how long a given-up answer holds before
    asking again (a flag fetch, whose `source` says why it is off); `retry` is the policy value
    for the next attempt.
    """

    verdict: Verdict
    retry: RetryPolicy
    drop_reason: str | None = None
    source: str | None = None
    delay_s: float = 0.0
    breaker: BreakerVote = BreakerVote.NONE


def _history(policy: RetryPolicy, outcome: HttpOutcome) -> tuple[str, ...]:
    return (*policy.history, str(outcome.status or outcome.error))


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries of one batch (or flag fetch): at most `total`, backed off, Retry-After honoured."""

    total: int = attrs.field(validator=attrs.validators.ge(0))
    backoff: Backoff
    retry_after_max_s: float = 60.0
    retries: int = 0
    history: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: TelemetrySettings) -> RetryPolicy:
        """The export policy the settings ask for, before any attempt."""
        return cls(
            total=settings.max_retries,
            backoff=Backoff(
                base_s=settings.retry_delay_ms / 1000.0, max_s=settings.retry_max_delay_ms / 1000.0
            ),
            retry_after_max_s=float(settings.retry_after_max_s),
        )

    def is_exhausted(self) -> bool:
        """True when no retry is left."""
        return self.retries >= self.total

    def decide(
        self,
        outcome: HttpOutcome,
        rng: random.Random,
        *,
        readable: bool = True,
        probe: bool = False,
    ) -> Decision:
        """Decide an export attempt; `readable` is False for a 2xx answer that is no answer.

        A half-open `probe` is never retried: its failure reopens the breaker at once.
        """
        if outcome.ok and readable:
            return Decision(verdict=Verdict.ACCEPT, retry=self, breaker=BreakerVote.SUCCESS)
        if not outcome.ok and error_kind(outcome) is ErrorKind.TERMINAL:
            if outcome.status in CREDENTIAL_STATUSES:
                return Decision(verdict=Verdict.GIVE_UP, retry=self, drop_reason="unauthorized")
            return Decision(
                verdict=Verdict.GIVE_UP,
                retry=self,
                drop_reason="rejected",
                breaker=BreakerVote.FAILURE,
            )
        if probe or self.is_exhausted():
            return Decision(
                verdict=Verdict.GIVE_UP,
                retry=self,
                drop_reason="export_failed",
                breaker=BreakerVote.FAILURE,
            )
        delay_s = self.backoff.delay_s(
            self.retries,
            rng,
            retry_after_s=outcome.retry_after_s,
            retry_after_max_s=self.retry_after_max_s,
        )
        following = attrs.evolve(self, retries=self.retries + 1, history=_history(self, outcome))
        return Decision(verdict=Verdict.RETRY, retry=following, delay_s=delay_s)

    def decide_flag(self, outcome: HttpOutcome, *, readable: bool, ttl_s: float) -> Decision:
        """Decide a flag fetch: never retried at once, a failure means off for a while.

        A 404 says the endpoint does not exist here: it holds for the whole `ttl_s` (the
        configured flag lifetime). Any other failure (an unreadable answer included) holds for
        `FLAG_FAILURE_HOLD_S`. An accepted answer holds as long as the server says.
        """
        if outcome.ok and readable:
            return Decision(verdict=Verdict.ACCEPT, retry=self)
        if outcome.status == 404:
            return Decision(verdict=Verdict.GIVE_UP, retry=self, source="not_found", delay_s=ttl_s)
        return Decision(
            verdict=Verdict.GIVE_UP,
            retry=self,
            source="fetch_failed",
            delay_s=FLAG_FAILURE_HOLD_S,
        )
