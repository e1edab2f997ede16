"""What the exporter sends: per-connection path and headers, and batches it owns until settled."""

from __future__ import annotations

import collections
import logging
import time

from actors._export.retry import RetryPolicy
from actors._runtime.contain import FAILED, call_user
from actors._runtime.timer import TimerHandle
from messages.commands import BatchSettled, ConnectionContext, ExportBatch
from messages.wire import encode_request, proto_log_bytes

__all__ = ["MAX_BODY_BYTES", "Pending", "StopSignal", "export_headers"]

logger = logging.getLogger("actors.exporter")

# Request bodies stay under the 1 MiB the service accepts: a batch whose logs (escaped free text
# can take 7 bytes a character on the wire) would not fit is sent in chunks, one per attempt.
MAX_BODY_BYTES = 1_000_000


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
        "retry",
        "retry_handle",
        "sent",
    )

    def __init__(self, batch: ExportBatch, retry: RetryPolicy) -> None:
        self.batch = batch
        self.retry = retry
        self.bodies: dict[bool, list[str]] = {}
        self.retry_handle: TimerHandle | None = None
        # When its retry is due (the exporter's clock): the drain waits for it if it fits.
        self.due_s: float | None = None
        self.sent = 0
        self.chunk_end = len(batch.logs)
        self.done_events = 0
        self.done_logs = 0
        self.done_dropped: collections.Counter[str] = collections.Counter()

    def chunk_body(self, logs: list[str]) -> bytes | None:
        """The body for the logs from `sent` on, as many as fit; None if not even one fits."""
        now_ms = int(time.time() * 1000)
        whole = encode_request(logs[self.sent :], now_ms)
        body: bytes | None = whole
        end = len(logs)
        if len(whole) > MAX_BODY_BYTES:
            size = len(encode_request((), now_ms))
            end = self.sent
            while end < len(logs):
                size += proto_log_bytes(logs[end])
                if size > MAX_BODY_BYTES:
                    break
                end += 1
            body = encode_request(logs[self.sent : end], now_ms) if end > self.sent else None
        self.chunk_end = end
        return body

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
