"""ExporterActor: sends batches to the host with their own connection's credentials.

One HTTP call at a time (bounded by explicit timeouts); retries, rate-limit waits and the periodic
pump are timer messages, so the inbox stays responsive. The circuit breaker lives here. Every batch
ends in exactly one `BatchSettled` told back to the aggregator, which keeps the accounts.
"""

from __future__ import annotations

import collections
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from actors._export.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from actors._export.http import HttpOutcome, Transport
from actors._export.merge import gather, share_accepted
from actors._export.outbox import (
    Pending,
    StopSignal,
    export_headers,
    observe_settled,
    send_chunk,
    sink_accounts,
)
from actors._export.rate_limit import TokenBucket
from actors._export.retry import BreakerVote, Decision, RetryPolicy, Verdict
from actors._runtime.base import GuardedActor
from actors._runtime.timer import Timer
from messages.commands import (
    BatchSettled,
    Drain,
    Drained,
    DumpState,
    ExportBatch,
    Flush,
    Pump,
    RestoreBreaker,
    RetryBatch,
    Teller,
)
from messages.config import TelemetrySettings
from messages.wire import decode_export_response, request_body

__all__ = ["ExporterActor", "StopSignal", "export_headers"]

logger = logging.getLogger("actors.exporter")


class _Send:
    """Told to itself after a batch arrives: send what is queued once the inbox's batches are in."""


class ExporterActor(GuardedActor):
    """Sends `ExportBatch`es for one host; breaker, retries and rate limit inside."""

    def __init__(
        self,
        *,
        base_url: str,
        settings: TelemetrySettings,
        transport: Transport,
        timer: Timer,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        breaker_state: BreakerSnapshot | None = None,
        stop_signal: StopSignal | None = None,
    ) -> None:
        super().__init__()
        self._base_url = base_url
        self._stop_signal = stop_signal or StopSignal()
        self._settings = settings
        self._transport = transport
        self._timer = timer
        self._clock = clock
        self._rng = rng or random.Random()
        self._breaker = CircuitBreaker(
            failure_threshold=settings.breaker_threshold,
            open_s=settings.breaker_open_s,
            success_threshold=settings.breaker_success_threshold,
            clock=clock,
        )
        # A breaker per host, not per tree: continue from the host's previous tree, if known.
        self._breaker_used = False
        if breaker_state is not None:
            self._breaker.restore(breaker_state)
        self._bucket = TokenBucket(
            rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst, clock=clock
        )
        self._retry = RetryPolicy.from_settings(settings)
        self._queue: collections.deque[Pending] = collections.deque()
        self._waiting: dict[int, Pending] = {}
        self._pump_scheduled = False
        self._send_told = False
        self._observed: list[BatchSettled] | None = None
        self._deadline_s: float | None = None
        self._drain_notify: Teller | None = None
        self._stats: collections.Counter[str] = collections.Counter()
        self._statuses: collections.Counter[str] = collections.Counter()
        self._dropped: collections.Counter[str] = collections.Counter()
        self._last_error: str | None = None

    def handle(self, message: Any) -> Any:
        match message:
            case ExportBatch():
                self._accept(message)
            case _Send():
                self._send_told = False
                self._pump()
            case RetryBatch(batch_id=batch_id):
                pending = self._waiting.pop(batch_id, None)
                if pending is not None:
                    self._queue.append(pending)
                    self._pump()
            case Pump():
                self._pump_scheduled = False
                self._pump()
            case Flush(reply=reply):
                self._pump(ignore_rate_limit=True)
                if reply is not None:
                    reply.set(not self._queue)
            case Drain():
                self._drain(message)
            case RestoreBreaker(snapshot=snapshot):
                if not self._breaker_used:  # the previous tree finished after this one started
                    self._breaker.restore(snapshot)
            case DumpState():
                return self.snapshot()
            case _:
                logger.debug("exporter: unexpected message %r", type(message))
        return None

    # --- intake -----------------------------------------------------------------------------

    def _accept(self, batch: ExportBatch) -> None:
        # Unbounded here by design: the aggregator's export queue is the one place that bounds
        # unsettled batches (`max_pending_batches`), so a batch it hands over is never refused.
        self._queue.append(Pending(batch, self._retry))
        if not self._send_told:  # behind the batches already in the inbox, so they share a body
            self._send_told = True
            self.actor_ref.tell(_Send())

    # --- sending ----------------------------------------------------------------------------

    def _drain_by(self) -> float | None:
        """The drain deadline: from `Drain`, or earlier from the supervisor's stop signal."""
        return self._deadline_s if self._deadline_s is not None else self._stop_signal.deadline_s

    def _pump(self, ignore_rate_limit: bool = False) -> None:
        deadline_s = self._drain_by()
        draining = deadline_s is not None
        while self._queue:
            if deadline_s is not None and self._clock() >= deadline_s:
                self._settle(self._queue.popleft(), exported_logs=0, reason="shutdown_timeout")
                continue
            if self._settings.breaker_enabled and not self._breaker.allow():
                self._settle(self._queue.popleft(), exported_logs=0, reason="breaker_open")
                continue
            if not (draining or ignore_rate_limit):
                wait_s = self._bucket.try_acquire()
                if wait_s > 0:
                    self._breaker.release()
                    self._stats["rate_limited"] += 1
                    if not self._pump_scheduled:
                        self._pump_scheduled = True
                        self._timer.schedule(wait_s, self.actor_ref, Pump())
                    return
            self._attempt(self._queue.popleft())
        self._maybe_finish_drain()

    def _attempt(self, pending: Pending) -> None:
        probe = self._breaker.state is BreakerState.HALF_OPEN
        self._stats["attempts"] += 1
        path, headers = export_headers(pending.batch.context)
        authed = path == "/telemetry-ext"
        now_ms = int(time.time() * 1000)
        bound = self._settings.max_pending_batches * self._settings.batch_size
        try:
            members = gather(
                pending, self._queue, authed, (path, headers), bound, now_ms, alone=probe
            )
        except Exception:  # a log the wire cannot carry: settle the batch rather than lose it
            logger.debug("exporter: batch %d cannot be encoded", pending.batch.batch_id)
            self._breaker.release()
            self._settle(pending, exported_logs=0, reason="invalid_event")
            return
        if not members:  # its next log alone is bigger than any body
            self._breaker.release()
            self._settle_chunk(pending, accepted=0, reason="too_large")
            return
        self._stats["merged_batches"] += len(members) - 1
        body = request_body([m.segment(authed) for m in members], now_ms)
        timeout_s = None
        deadline_s = self._drain_by()
        if deadline_s is not None:
            timeout_s = max(0.05, deadline_s - self._clock())
        outcome = send_chunk(
            self._transport,
            members,
            self._base_url + path,
            authed=authed,
            body=body,
            headers=headers,
            timeout_s=timeout_s,
        )
        self._statuses[str(outcome.status or outcome.error)] += 1
        self._on_outcome(members, outcome, probe)

    def _settle_chunk(self, pending: Pending, *, accepted: int, reason: str) -> None:
        """The chunk `sent:chunk_end` is done: settle the batch, or queue its next chunk first."""
        end = pending.sent + 1 if reason == "too_large" else pending.chunk_end
        if end >= len(pending.batch.logs):
            self._settle(pending, exported_logs=accepted, reason=reason)
            return
        lost = pending.finish_chunk(accepted=accepted, reason=reason, end=end)
        if lost:
            self._dropped[reason] += lost
        pending.retry = self._retry  # each chunk has its own retries
        self._queue.appendleft(pending)

    def _on_outcome(self, members: list[Pending], outcome: HttpOutcome, probe: bool) -> None:
        """One answer for the body's batches: each decides by its own retries; one breaker vote."""
        accepted = 0
        readable = True
        if outcome.ok:
            try:
                accepted = decode_export_response(outcome.body).num_proto_success
            except ValueError as exc:
                self._last_error, readable = str(exc), False
        else:
            self._last_error = f"HTTP {outcome.status}" if outcome.status else str(outcome.error)
        shares = share_accepted(members, accepted)
        self._observed = []  # a sink sees the body's settlements together, after the last
        for index, (pending, share) in enumerate(zip(members, shares, strict=True)):
            decision = pending.retry.decide(outcome, self._rng, readable=readable, probe=probe)
            if index == 0:
                self._vote(decision.breaker)
            if decision.verdict is Verdict.ACCEPT:
                self._settle_chunk(pending, accepted=share, reason=pending.partial_reason)
            elif decision.verdict is Verdict.RETRY:
                self._retry_later(pending, decision)
            else:
                reason = decision.drop_reason or "export_failed"
                self._settle(pending, exported_logs=0, reason=reason)
        observed, self._observed = self._observed, None
        observe_settled(self._transport, observed, self._drain_by(), self._clock())

    def _retry_later(self, pending: Pending, decision: Decision) -> None:
        deadline_s = self._drain_by()
        if deadline_s is not None and self._clock() + decision.delay_s >= deadline_s:
            self._settle(pending, exported_logs=0, reason="shutdown_timeout")
            return
        self._stats["retries_scheduled"] += 1
        # A batch waiting for its retry keeps its records, not their JSON: in an outage the
        # encoded copies of every waiting batch add up, while encoding again costs only retries.
        pending.forget_encoded()
        pending.retry = decision.retry
        pending.due_s = self._clock() + decision.delay_s
        self._waiting[pending.batch.batch_id] = pending
        pending.retry_handle = self._timer.schedule(
            decision.delay_s, self.actor_ref, RetryBatch(batch_id=pending.batch.batch_id)
        )

    def _vote(self, vote: BreakerVote) -> None:
        if vote is BreakerVote.NONE:
            self._breaker.release()  # a retry or a bad credential: the probe, if any, is over
        else:
            self._record(success=vote is BreakerVote.SUCCESS)

    def _record(self, *, success: bool) -> None:
        if not self._settings.breaker_enabled:
            return
        self._breaker_used = True
        if success:
            self._breaker.record_success()
        else:
            self._breaker.record_failure()

    def _settle(self, pending: Pending, *, exported_logs: int, reason: str) -> None:
        """Of the logs not yet sent, the first `exported_logs` went out; the rest drop."""
        settled, dropped = pending.settlement(exported_logs=exported_logs, reason=reason)
        if dropped:
            self._dropped[reason] += dropped
        self._stats["batches_settled"] += 1
        pending.batch.reply_to.tell(settled)
        if self._observed is not None:
            self._observed.append(settled)
        else:
            observe_settled(self._transport, (settled,), self._drain_by(), self._clock())

    # --- final drain ------------------------------------------------------------------------

    def _drain(self, message: Drain) -> None:
        """Send what is queued; a batch waiting for its retry keeps waiting as the server asked
        (Retry-After) or backoff says, when that fits before the deadline, else it drops now as
        `shutdown_timeout`: it is never rushed to a server that asked us to wait."""
        self._deadline_s = message.deadline_s
        self._drain_notify = message.notify
        for batch_id, pending in list(self._waiting.items()):
            if pending.due_s is not None and pending.due_s < message.deadline_s:
                continue  # its timer delivers `RetryBatch` in time
            if pending.retry_handle is not None:
                pending.retry_handle.cancel()
            del self._waiting[batch_id]
            self._settle(pending, exported_logs=0, reason="shutdown_timeout")
        self._pump()

    def _maybe_finish_drain(self) -> None:
        if self._drain_notify is not None and not self._queue and not self._waiting:
            notify, self._drain_notify = self._drain_notify, None
            notify.tell(Drained(snapshot=self.snapshot(), breaker=self._breaker.snapshot()))

    def snapshot(self) -> dict[str, Any]:
        """Breaker (a record, for the host's next tree), rate limit, batches, outcomes, drops."""
        return {
            "base_url": self._base_url,
            "queued_batches": len(self._queue),
            "retrying_batches": len(self._waiting),
            "in_flight_batches": len(self._queue) + len(self._waiting),
            "breaker": self._breaker.snapshot(),
            "rate_limit": self._bucket.snapshot(),
            "stats": dict(self._stats),
            "responses": dict(self._statuses),
            "dropped": dict(self._dropped),
            "sink": sink_accounts(self._transport),
            "last_error": self._last_error,
            "draining": self._deadline_s is not None,
            "handler_errors": self.handler_errors,
        }
