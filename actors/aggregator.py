"""AggregatorActor: one frontend log per statement, batched per connection, with exact accounts.

It receives ``(ConnectionContext, event)`` tuples from driver threads, folds statement events
into one log per statement, holds logs until the feature flag is known, and hands batches to the
exporter. It is the host's accountant: at every message boundary
``received == exported + sum(dropped) + pending`` holds, and its snapshot says so.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
import typing
from typing import Any

from actors._aggregate.batching import Queued, take_batches
from actors._aggregate.statements import (
    StatementAggregate,
    build_log,
    error_info,
    invalid_reason,
    ms,
)
from actors._export.classify import ErrorKind, classify_status
from actors._runtime.base import LANE_WAKE, ExpressInbox, GuardedActor
from actors._runtime.timer import Timer
from messages import events as ev
from messages.commands import (
    Abandon,
    BatchSettled,
    ConnectionContext,
    Drain,
    Drained,
    DumpState,
    ExportBatch,
    FlagDecided,
    Flush,
    FlushTick,
    Teller,
)
from messages.config import TelemetrySettings
from messages.enums import OperationType
from messages.privacy import LogKind
from messages.records import OperationDetail, SqlDriverLog, SqlExecutionEvent

__all__ = ["AggregatorActor"]

logger = logging.getLogger("actors.aggregator")

# While driver events keep arriving the aggregator looks at its express lane this often, so
# driver threads need not wake it per event; a quiet lane goes back to being woken by the next one.
_LANE_INTERVAL_S = 0.005


class AggregatorActor(GuardedActor):
    """Folds one host's events into logs and batches them to the exporter."""

    @staticmethod
    def _create_actor_inbox() -> Any:
        return ExpressInbox()

    def __init__(
        self,
        *,
        settings: TelemetrySettings,
        exporter: Teller,
        timer: Timer,
        wall_clock: Any = time.time,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._exporter = exporter
        self._timer = timer
        self._wall_clock = wall_clock
        self._flag: bool | None = None
        self._statements: dict[str, StatementAggregate] = {}
        self._statement_events = 0
        self._queue: collections.deque[Queued] = collections.deque()
        self._queued_events = 0
        self._in_export: dict[int, int] = {}
        self._batch_ids = itertools.count(1)
        self._received = 0
        self._exported = 0
        self._exported_logs = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._logs: collections.Counter[str] = collections.Counter()
        self._stats: collections.Counter[str] = collections.Counter()
        self._drain_notify: Teller | None = None
        self._drain_waits_for_flag: float | None = None
        self._exporter_final: Any = None
        self._tick: Any = None
        self._lane = typing.cast(ExpressInbox, self.actor_inbox)
        self._lane_tick_pending = False
        self._export_backlogged = False
        self._held_flushes: list[Flush] = []

    def on_start(self) -> None:
        """Start the flush interval timer."""
        self._schedule_tick()

    def on_stop(self) -> None:
        """Events told from now on are counted by the facade as dropped."""
        self._lane.closed = True

    def handle(self, message: Any) -> Any:
        taken = self._take_lane() if self._lane.events else 0
        match message:
            case (ConnectionContext() as context, event):
                self._receive(context, event)
            case _LaneTick():
                self._lane_tick_pending = False
                self._after_lane(taken)
            case _ if message is LANE_WAKE:
                self._after_lane(taken)
            case FlushTick():
                self._schedule_tick()
                self._send_batches()
            case BatchSettled():
                self._on_settled(message)
            case FlagDecided(enabled=enabled):
                self._flag = enabled
                if not enabled:
                    while self._queue:
                        self._drop_queued("flag_off")
                else:  # a flush that waited for the flag hands over everything
                    self._send_batches(force=bool(self._held_flushes))
                for held in self._held_flushes:
                    self._exporter.tell(held)
                self._held_flushes.clear()
                if self._drain_waits_for_flag is not None:
                    self._export_and_drain(self._drain_waits_for_flag)
            case Flush():
                if self._flag is None and self._queue:  # nothing can go before the flag is known
                    self._held_flushes.append(message)
                else:
                    self._send_batches(force=True)
                    self._exporter.tell(message)
            case Drain():
                self._drain(message)
            case Drained(snapshot=exporter_final):
                self._exporter_final = exporter_final
                self._finish_drain()
            case Abandon():
                self._drain_waits_for_flag = None
                while self._queue:  # the flag never came: the server's wish is unknown
                    self._drop_queued("flag_unknown")
                for held in self._held_flushes:
                    if held.reply is not None:
                        held.reply.set(False)
                self._held_flushes.clear()
                for batch_id, events in list(self._in_export.items()):
                    self._dropped["shutdown_timeout"] += events
                    del self._in_export[batch_id]
                self._finish_drain()
            case DumpState():
                return self.snapshot()
            case _:
                self._received += 1
                self._dropped["invalid_event"] += 1
                logger.debug(
                    "aggregator: dropped a %s that is not an event", type(message).__name__
                )
        return None

    # --- events -----------------------------------------------------------------------------

    def _receive(self, context: ConnectionContext, event: object) -> None:
        self._received += 1
        try:
            self._on_event(context, event)
        except Exception:  # a bug: count the event as dropped so the accounts balance
            self._dropped["handler_error"] += max(0, self._unaccounted())
            raise

    def _take_lane(self) -> int:
        """Handle every event waiting in the express lane, oldest first."""
        events = self._lane.events
        taken = 0
        while events:
            context, event = events.popleft()
            taken += 1
            try:
                self._receive(context, event)
            except Exception:  # counted like a handler error of a told message
                self.handler_errors += 1
                logger.debug("aggregator: handler error on an event", exc_info=True)
        return taken

    def _after_lane(self, taken: int) -> None:
        """Keep looking at the lane while events arrive; when it is quiet, be woken again."""
        if not taken:
            self._lane.scheduled = False
            if not self._lane.events:
                return
            self._lane.scheduled = True  # a driver appended, seeing `scheduled` still set
            self._take_lane()
        if not self._lane_tick_pending:
            self._lane_tick_pending = True
            self._timer.schedule(_LANE_INTERVAL_S, self.actor_ref, _LaneTick())

    def _on_event(self, context: ConnectionContext, event: object) -> None:
        reason = invalid_reason(event)
        if reason is not None:
            self._dropped["invalid_event"] += 1
            self._stats[f"invalid_{reason}"] += 1
            return
        if self._flag is False:
            self._dropped["flag_off"] += 1
            return
        if self._drain_notify is not None:
            self._dropped["after_shutdown"] += 1
            return
        match event:
            case ev.StatementStarted():
                st = self._statement(context, event.statement_id)
                st.session_id = event.session_id
                st.statement_type = event.statement_type
                st.operation_type = event.operation_type
            case ev.OperationPolled():
                st = self._statement(context, event.statement_id)
                st.polls += 1
                st.poll_ms += event.latency_ms
            case ev.ChunkDownloaded():
                self._statement(context, event.statement_id).add_chunk(event)
            case ev.StatementCompleted():
                self._statement(context, event.statement_id).done = event
                self._count_statement_event()
                self._emit_statement(event.statement_id)
                return
            case ev.StatementCancelled() | ev.StatementClosed():
                closing = self._statements.get(event.statement_id)
                if closing is not None:
                    closing.events += 1
                    self._count_statement_event()
                    self._emit_statement(event.statement_id)
                else:  # closing an already-emitted statement: a CLOSE_STATEMENT log of its own
                    self._emit(context, LogKind.CLOSE, self._close_log(None, event), 1)
                return
            case ev.ErrorOccurred():
                self._on_error(context, event)
                return
            case ev.ConnectionOpened():
                log = SqlDriverLog(
                    session_id=event.session_id,
                    system_configuration=event.system_configuration or context.system_configuration,
                    driver_connection_params=event.connection_params,
                    auth_type=event.auth_type,
                    operation_latency_ms=ms(event.latency_ms),
                )
                self._emit(context, LogKind.CONNECTION, log, 1)
                return
            case ev.ConnectionClosed():
                for statement_id in [
                    s.statement_id
                    for s in self._statements.values()
                    if s.session_id == event.session_id
                ]:
                    self._emit_statement(statement_id)
                self._emit(context, LogKind.CLOSE, self._close_log(event.session_id, event), 1)
                return
        self._count_statement_event()

    def _count_statement_event(self) -> None:
        """The event just folded into a pending statement: it is pending until emitted."""
        self._statement_events += 1

    def _statement(self, context: ConnectionContext, statement_id: str) -> StatementAggregate:
        st = self._statements.get(statement_id)
        if st is None:
            if len(self._statements) >= self._settings.max_pending_statements:
                self._stats["evicted_early"] += 1
                self._emit_statement(next(iter(self._statements)))
            st = self._statements[statement_id] = StatementAggregate(context, statement_id)
        st.events += 1
        return st

    def _emit_statement(self, statement_id: str) -> None:
        st = self._statements.pop(statement_id)
        self._statement_events -= st.events
        kind, log = st.driver_log(self._settings.error_text)
        self._emit(st.context, kind, log, st.events)

    def _on_error(self, context: ConnectionContext, error: ev.ErrorOccurred) -> None:
        retryable = error.retryable
        if retryable is None and error.http_status is not None:
            retryable = classify_status(error.http_status) is ErrorKind.RETRYABLE
        st = self._statements.get(error.statement_id) if error.statement_id else None
        if st is not None and retryable:  # held until its statement completes
            st.error = error
            st.events += 1
            self._statement_events += 1
            return
        if st is not None:  # terminal: the statement ends here, with its error, right away
            st.error = error
            st.events += 1
            self._statement_events += 1
            self._emit_statement(st.statement_id)
            return
        log = SqlDriverLog(
            session_id=error.session_id,
            sql_statement_id=error.statement_id,
            system_configuration=context.system_configuration,
            error_info=error_info(error, self._settings.error_text),
        )
        self._emit(context, LogKind.ERROR, log, 1)

    @staticmethod
    def _close_log(session_id: str | None, event: Any) -> SqlDriverLog:
        is_session = isinstance(event, ev.ConnectionClosed)
        operation = OperationType.DELETE_SESSION if is_session else OperationType.CLOSE_STATEMENT
        if isinstance(event, ev.StatementCancelled):
            operation = OperationType.CANCEL_STATEMENT
        return SqlDriverLog(
            session_id=session_id,
            sql_statement_id=None if is_session else event.statement_id,
            sql_operation=SqlExecutionEvent(
                operation_detail=OperationDetail(operation_type=operation)
            ),
            operation_latency_ms=ms(event.latency_ms) if is_session else None,
        )

    # --- queue and batches ------------------------------------------------------------------

    def _emit(
        self, context: ConnectionContext, kind: LogKind, log: SqlDriverLog, events: int
    ) -> None:
        self._logs[kind.value] += 1
        if self._flag is False:
            self._dropped["flag_off"] += events
            return
        if len(self._queue) >= self._settings.max_queued_logs:
            self._dropped["queue_full"] += events
            return
        now_ms = int(self._wall_clock() * 1000)
        self._queue.append((context, build_log(context, kind, log, now_ms), events))
        self._queued_events += events
        if self._flag and len(self._queue) >= self._settings.batch_size:
            self._send_batches()

    def _drop_queued(self, reason: str) -> None:
        _, _, events = self._queue.popleft()
        self._queued_events -= events
        self._dropped[reason] += events

    def _send_batches(self, *, force: bool = False) -> None:
        """Hand queued logs to the exporter, with at most `max_pending_batches` unsettled.

        pykka inboxes are unbounded, so this is where the exporter's backlog is bounded: logs
        that do not fit wait in this actor's bounded queue (overflowing as `queue_full`) until
        a batch settles. A flush or the final drain (`force`) hands over all that is queued.
        """
        if not self._flag or not self._queue:
            return
        if force:
            room = len(self._queue)
        else:
            room = self._settings.max_pending_batches - len(self._in_export)
        self._export_backlogged = room <= 0
        if room <= 0:
            return
        batches = take_batches(self._queue, self._settings.batch_size)
        for context, items in batches:
            batch_id = next(self._batch_ids)
            counts = tuple(n for _, n in items)
            self._in_export[batch_id] = sum(counts)
            self._queued_events -= self._in_export[batch_id]
            self._exporter.tell(
                ExportBatch(
                    batch_id=batch_id,
                    context=context,
                    logs=tuple(log for log, _ in items),
                    event_counts=counts,
                    reply_to=self.actor_ref,
                )
            )
            room -= 1
            if room <= 0:
                batches.close()  # what it did not hand out goes back to the queue
                self._export_backlogged = bool(self._queue)
                break

    def _on_settled(self, settled: BatchSettled) -> None:
        if self._in_export.pop(settled.batch_id, None) is None:
            return  # abandoned at shutdown: already counted
        self._exported += settled.exported_events
        self._exported_logs += settled.exported_logs
        for reason, events in settled.dropped.items():
            self._dropped[reason] += events
        if self._export_backlogged:  # logs held back for want of room may go now
            self._send_batches()

    def _schedule_tick(self) -> None:
        self._tick = self._timer.schedule(
            self._settings.flush_interval_s, self.actor_ref, FlushTick()
        )

    # --- final drain ------------------------------------------------------------------------

    def _drain(self, message: Drain) -> None:
        self._drain_notify = message.notify
        if self._tick is not None:
            self._tick.cancel()
        for statement_id in list(self._statements):
            self._emit_statement(statement_id)
        if self._flag is None:  # a short-lived process: wait for the flag, up to the deadline
            self._drain_waits_for_flag = message.deadline_s
            return
        self._export_and_drain(message.deadline_s)

    def _export_and_drain(self, deadline_s: float) -> None:
        self._drain_waits_for_flag = None
        self._send_batches(force=True)
        self._exporter.tell(Drain(deadline_s=deadline_s, notify=self.actor_ref))

    def _finish_drain(self) -> None:
        notify, self._drain_notify = self._drain_notify, None
        if notify is not None:
            self._drain_notify = _Closed()
            # Close the lane before the final accounts: later events are counted by the facade,
            # and those already in it are received here (as after_shutdown) and so in the accounts.
            self._lane.closed = True
            self._take_lane()
            final = self.snapshot()
            if self._exporter_final is not None:
                final["exporter"] = dict(self._exporter_final)
            notify.tell(Drained(snapshot=final))

    def _unaccounted(self) -> int:
        pending = self._statement_events + self._queued_events + sum(self._in_export.values())
        return self._received - self._exported - sum(self._dropped.values()) - pending

    def snapshot(self) -> dict[str, Any]:
        """The host's accounts and buffers; `balanced` checks the accounting identity."""
        in_export = sum(self._in_export.values())
        pending = self._statement_events + self._queued_events + in_export
        dropped = sum(self._dropped.values())
        return {
            "received": self._received,
            "exported": self._exported,
            "dropped": dict(self._dropped),
            "pending": pending,
            "pending_detail": {
                "open_statement_events": self._statement_events,
                "queued_events": self._queued_events,
                "in_export_events": in_export,
            },
            "balanced": self._received == self._exported + dropped + pending,
            "open_statements": len(self._statements),
            "queued_logs": len(self._queue),
            "in_flight_batches": len(self._in_export),
            "exported_logs": self._exported_logs,
            "logs_emitted": dict(self._logs),
            "flag": {None: "unknown", True: "on", False: "off"}[self._flag],
            "stats": dict(self._stats),
            "handler_errors": self.handler_errors,
        }


class _LaneTick:
    """Timer fact: look at the express lane again."""


class _Closed:
    """Marks a finished drain: later events count as `after_shutdown`."""

    def tell(self, message: Any) -> None:
        """Nothing listens any more."""
