"""What the exporter sends: per-connection path and headers, and batches it owns until settled."""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from actors._export.retry import RetryPolicy
from actors._export.slices import SLICE_S, encode_in_slices
from actors._runtime.contain import FAILED, call_user
from actors._runtime.timer import TimerHandle
from messages.commands import BatchSettled, ConnectionContext, ExportBatch
from messages.encode import escaped_frontend_log
from messages.privacy import strip_for_unauth
from messages.records import FrontendLog
from messages.transport import HttpOutcome, Transport
from messages.wire import request_body

__all__ = [
    "MAX_BODY_BYTES",
    "LogsTransport",
    "Pending",
    "StopSignal",
    "export_headers",
    "observe_settled",
    "send_chunk",
    "sink_accounts",
]

logger = logging.getLogger("actors.exporter")

# Request bodies stay under the 1 MiB the service accepts: a batch whose logs (escaped free text
# can take 7 bytes a character on the wire) would not fit is sent in chunks, one per attempt.
MAX_BODY_BYTES = 1_000_000
# And at most this many logs: the service takes up to 1,000 `protoLogs` a request (the local
# endpoint answers more with 400), so a batch above it, or batches sharing a body, are cut there.
MAX_BODY_LOGS = 1_000


def _escaped_log(log: FrontendLog) -> bytes:
    return escaped_frontend_log(log).encode("utf-8")  # `wire.escape_log` of its JSON, one pass


def body_room(upload_time_ms: int) -> int:
    """How many bytes of escaped logs (and their commas) a body sent now may carry."""
    return MAX_BODY_BYTES - len(request_body((), upload_time_ms))


def export_headers(context: ConnectionContext) -> tuple[str, dict[str, str]]:
    """The path and headers for one connection: its own auth, or none and `/telemetry-unauth`."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": context.user_agent,
    }
    auth: dict[str, str] = {}
    provider = context.auth
    if provider is not None:
        # The driver's provider may raise anything (contained); if it fails, send unauthenticated.
        auth = call_user(lambda: {str(k): str(v) for k, v in dict(provider()).items()})
        if auth is FAILED:
            auth = {}
            logger.debug("exporter: auth provider of connection %d failed", context.connection_id)
    if not auth:
        return "/telemetry-unauth", headers
    headers.update(auth)
    if context.workspace_id is not None:
        headers["x-databricks-org-id"] = str(context.workspace_id)
    return "/telemetry-ext", headers


class StopSignal:
    """The tree's drain deadline, seen by the exporter ahead of the batches queued in its inbox.

    Written once by the supervisor when the tree starts stopping (one attribute write), read by
    the exporter before each send: batches still waiting in its inbox behind a slow endpoint are
    then never sent after the deadline, when the accounts already call them dropped.
    """

    __slots__ = ("deadline_s",)

    def __init__(self) -> None:
        self.deadline_s: float | None = None


class Pending:
    """A batch owned by the exporter until it settles (actor-confined, mutable).

    A batch too big for one body goes out in chunks: `sent` logs are already settled (their
    outcome kept in `done_events`, `done_logs` and `done_dropped`), the next chunk starts there.
    """

    __slots__ = (
        "batch",
        "bodies",
        "chunk_end",
        "done_dropped",
        "done_events",
        "done_logs",
        "due_s",
        "partial_reason",
        "retry",
        "retry_handle",
        "sent",
        "sources",
    )

    def __init__(self, batch: ExportBatch, retry: RetryPolicy) -> None:
        self.batch = batch
        self.retry = retry
        self.bodies: dict[bool, list[bytes]] = {}
        self.sources: dict[bool, tuple[FrontendLog, ...]] = {}
        self.partial_reason = "partial_rejected"
        self.retry_handle: TimerHandle | None = None
        # When its retry is due (the exporter's clock): the drain waits for it if it fits.
        self.due_s: float | None = None
        self.sent = 0
        self.chunk_end = len(batch.logs)
        self.done_events = 0
        self.done_logs = 0
        self.done_dropped: collections.Counter[str] = collections.Counter()

    def source(self, authed: bool) -> tuple[FrontendLog, ...]:
        """The records sent: the batch's own, or reduced as for `/telemetry-unauth`."""
        records = self.sources.get(authed)
        if records is None:
            logs = self.batch.logs
            records = self.sources[authed] = logs if authed else tuple(map(strip_for_unauth, logs))
        return records

    def forget_encoded(self) -> None:
        """Drop the encoded copies (and reduced records) while the batch waits for a retry."""
        self.bodies.clear()
        self.sources.clear()

    def encoded(self, authed: bool, slice_s: float = SLICE_S) -> list[bytes]:
        """Its logs as they stand in a body (`escape_log`), encoded once, in slices of `slice_s`."""
        logs = self.bodies.get(authed)
        if logs is None:
            source = self.source(authed)
            logs = self.bodies[authed] = encode_in_slices(source, _escaped_log, slice_s)
        return logs

    def fit(
        self, authed: bool, room: int, slice_s: float = SLICE_S, slots: int = MAX_BODY_LOGS
    ) -> int:
        """Put the logs from `sent` on that fit in `room` bytes, at most `slots` of them, in the
        next chunk; bytes used.

        Sets `chunk_end` (`sent` itself when not even the next log fits).
        """
        logs = self.encoded(authed, slice_s)
        start = self.sent
        whole = sum(map(len, logs[start:])) + max(0, len(logs) - start - 1)
        if whole <= room and len(logs) - start <= slots:
            self.chunk_end = len(logs)
            return whole
        end, used = start, -1
        last = min(len(logs), start + max(0, slots))
        while end < last and used + 1 + len(logs[end]) <= room:
            used += 1 + len(logs[end])
            end += 1
        self.chunk_end = end
        return max(0, used)

    def segment(self, authed: bool) -> bytes:
        """The chunk `sent:chunk_end` as one run of a body's `protoLogs`."""
        return b",".join(self.encoded(authed)[self.sent : self.chunk_end])

    def finish_chunk(self, *, accepted: int, reason: str, end: int) -> int:
        """Account the chunk `sent:end`, of which the first `accepted` logs went out.

        Returns the events of the chunk's other logs, now dropped as `reason`.
        """
        counts, start = self.batch.event_counts, self.sent
        self.done_events += sum(counts[start : start + accepted])
        self.done_logs += accepted
        lost = sum(counts[start + accepted : end])
        if lost:
            self.done_dropped[reason] += lost
        self.sent = end
        return lost

    def settlement(self, *, exported_logs: int, reason: str) -> tuple[BatchSettled, int]:
        """The batch's one `BatchSettled`, and how many events of it drop now as `reason`.

        Of the logs not yet sent, the first `exported_logs` went out; the rest drop.
        """
        counts = self.batch.event_counts[self.sent :]
        dropped = sum(counts[exported_logs:])
        by_reason = collections.Counter(self.done_dropped)
        if dropped:
            by_reason[reason] += dropped
        settled = BatchSettled(
            batch_id=self.batch.batch_id,
            exported_events=self.done_events + sum(counts[:exported_logs]),
            exported_logs=self.done_logs + exported_logs,
            dropped=by_reason,
        )
        return settled, dropped


@runtime_checkable
class LogsTransport(Protocol):
    """A transport that takes the chunk's records beside its body (OTLP): no JSON parsed back.

    It answers in the exporter's terms (a 2xx body with `numProtoSuccess`), names the reason
    its partial successes drop as, sees each batch's settlement (for its own metrics, within
    what is left of a drain deadline) and reports its own accounts for `dump_state()`.
    """

    partial_reason: str

    @property
    def accounts(self) -> Mapping[str, Any]:
        """The sink's own counts (JSON-ready)."""
        ...

    def send_logs(
        self,
        url: str,
        *,
        logs: Sequence[FrontendLog],
        body: bytes,
        headers: Mapping[str, str],
        timeout_s: float | None,
    ) -> HttpOutcome:
        """Send one chunk's logs; never raises."""
        ...

    def settled(self, settled: BatchSettled, timeout_s: float | None = None) -> None:
        """Count one batch's settlement; never raises."""
        ...


def send_chunk(
    transport: Transport,
    members: Sequence[Pending],
    url: str,
    *,
    authed: bool,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float | None,
) -> HttpOutcome:
    """POST one body: each member's chunk `sent:chunk_end` in turn, and their records to a
    `LogsTransport`."""
    if isinstance(transport, LogsTransport):
        logs: list[FrontendLog] = []
        for pending in members:
            pending.partial_reason = transport.partial_reason
            logs.extend(pending.source(authed)[pending.sent : pending.chunk_end])
        return transport.send_logs(url, logs=logs, body=body, headers=headers, timeout_s=timeout_s)
    return transport.request("POST", url, body=body, headers=headers, timeout_s=timeout_s)


def observe_settled(
    transport: Transport,
    settlements: Sequence[BatchSettled],
    deadline_s: float | None,
    now_s: float,
) -> None:
    """Tell a `LogsTransport` what the batches of one body settled as (the exporter's accounts,
    for its metrics): a batch's own settlement, or the sum of those that shared the body under
    the first one's id, so a sink that sends its metrics after a settlement counts them all."""
    if isinstance(transport, LogsTransport) and settlements:
        settled = settlements[0]
        if len(settlements) > 1:
            dropped: collections.Counter[str] = collections.Counter()
            for each in settlements:
                dropped.update(each.dropped)
            settled = BatchSettled(
                batch_id=settled.batch_id,
                exported_events=sum(s.exported_events for s in settlements),
                exported_logs=sum(s.exported_logs for s in settlements),
                dropped=dropped,
            )
        timeout_s = None if deadline_s is None else max(0.0, deadline_s - now_s)
        try:
            transport.settled(settled, timeout_s)
        except Exception:  # the settlement still reaches the aggregator
            logger.debug("exporter: the sink failed to count batch %d", settled.batch_id)


def sink_accounts(transport: Transport) -> dict[str, Any]:
    """A `LogsTransport`'s own accounts for the exporter's snapshot; {} for other transports."""
    if not isinstance(transport, LogsTransport):
        return {}
    try:
        return dict(transport.accounts)
    except Exception:
        return {"error": "unavailable"}
