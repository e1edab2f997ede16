"""Folding a host's events into logs: one log per statement, connection, close or lone error.

Plain and confined to the aggregator's thread. `Folder.fold()` takes one valid event and returns
the logs it completes; events folded into a statement not yet emitted are held in the ledger as
`Place.OPEN`, and each `Emitted` says how many told events its log stands for.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

from actors._aggregate.ledger import Ledger, Place
from actors._aggregate.statements import StatementAggregate, error_info, ms, statement_log
from actors._export.classify import ErrorKind, classify_status
from messages import events as ev
from messages.commands import ConnectionContext
from messages.enums import OperationType
from messages.privacy import LogKind
from messages.records import OperationDetail, SqlDriverLog, SqlExecutionEvent

__all__ = ["Emitted", "Folder"]


class Emitted(NamedTuple):
    """A finished log and the told events it stands for (`held`: they waited as `OPEN`).

    A named tuple, not an attrs record: one is made per log on the aggregator's hot path.
    """

    context: ConnectionContext
    kind: LogKind
    log: SqlDriverLog
    events: int = 1
    held: bool = False


class Folder:
    """Open statements of one host and the folding of events into them."""

    def __init__(
        self,
        ledger: Ledger,
        max_statements: int,
        stats: collections.Counter[str],
        error_text: str = "masked",
    ):
        self._ledger = ledger
        self._max = max_statements
        self._error_text = error_text
        self._stats = stats
        self.statements: dict[str, StatementAggregate] = {}

    def fold(self, context: ConnectionContext, event: object) -> list[Emitted]:
        """Fold one valid event; the logs it completes, oldest first."""
        out: list[Emitted] = []
        match event:
            case ev.StatementStarted():
                st = self._join(context, event.statement_id, out)
                st.session_id = event.session_id
                st.statement_type = event.statement_type
                st.operation_type = event.operation_type
            case ev.OperationPolled():
                st = self._join(context, event.statement_id, out)
                st.polls += 1
                st.poll_ms += event.latency_ms
            case ev.ChunkDownloaded():
                self._join(context, event.statement_id, out).add_chunk(event)
            case ev.StatementCompleted():
                self._join(context, event.statement_id, out).done = event
                out.append(self._finish(event.statement_id))
            case ev.StatementSummary():
                out.append(self._summary(context, event))
            case ev.StatementCancelled() | ev.StatementClosed():
                if event.statement_id in self.statements:
                    self._join(context, event.statement_id, out)
                    out.append(self._finish(event.statement_id))
                else:  # closing an already-emitted statement: a CLOSE_STATEMENT log of its own
                    out.append(Emitted(context=context, kind=LogKind.CLOSE, log=_close_log(event)))
            case ev.ErrorOccurred():
                self._error(context, event, out)
            case ev.ConnectionOpened():
                out.append(
                    Emitted(context=context, kind=LogKind.CONNECTION, log=_opened(context, event))
                )
            case ev.ConnectionClosed():
                for st in [s for s in self.statements.values() if s.session_id == event.session_id]:
                    out.append(self._finish(st.statement_id))
                out.append(Emitted(context=context, kind=LogKind.CLOSE, log=_close_log(event)))
        return out

    def finish_all(self) -> list[Emitted]:
        """Every open statement's log (the final drain)."""
        return [self._finish(statement_id) for statement_id in list(self.statements)]

    def _join(self, context: ConnectionContext, statement_id: str, out: list[Emitted]) -> Any:
        """The statement an event joins (started on first sight); the event is held with it."""
        st = self.statements.get(statement_id)
        if st is None:
            if len(self.statements) >= self._max:
                self._stats["evicted_early"] += 1
                out.append(self._finish(next(iter(self.statements))))
            st = self.statements[statement_id] = StatementAggregate(context, statement_id)
        st.events += 1
        self._ledger.hold(Place.OPEN)
        return st

    def _finish(self, statement_id: str) -> Emitted:
        st = self.statements.pop(statement_id)
        kind, log = st.driver_log(self._error_text)
        return Emitted(context=st.context, kind=kind, log=log, events=st.events, held=True)

    def _summary(self, context: ConnectionContext, summary: ev.StatementSummary) -> Emitted:
        """A statement the driver folded itself: its log, as its events would have made it."""
        kind, log = statement_log(
            context,
            summary.statement_id,
            summary.session_id,
            summary.statement_type,
            summary.operation_type,
            summary.polls,
            summary.poll_latency_ms,
            summary.chunks,
            summary.first_chunk_latency_ms,
            summary.slowest_chunk_latency_ms,
            summary.chunks_latency_ms,
            summary.compressed,
            summary if summary.completed else None,
            summary.error,
            self._error_text,
        )
        return Emitted(context, kind, log)

    def _error(
        self, context: ConnectionContext, error: ev.ErrorOccurred, out: list[Emitted]
    ) -> None:
        retryable = error.retryable
        if retryable is None and error.http_status is not None:
            retryable = classify_status(error.http_status) is ErrorKind.RETRYABLE
        if error.statement_id and error.statement_id in self.statements:
            self._join(context, error.statement_id, out).error = error
            if not retryable:  # terminal: the statement ends here, with its error, right away
                out.append(self._finish(error.statement_id))
            return  # retryable: held until its statement completes
        log = SqlDriverLog(
            session_id=error.session_id,
            sql_statement_id=error.statement_id,
            system_configuration=context.system_configuration,
            error_info=error_info(error, self._error_text),
        )
        out.append(Emitted(context=context, kind=LogKind.ERROR, log=log))


def _opened(context: ConnectionContext, event: ev.ConnectionOpened) -> SqlDriverLog:
    return SqlDriverLog(
        session_id=event.session_id,
        system_configuration=event.system_configuration or context.system_configuration,
        driver_connection_params=event.connection_params,
        auth_type=event.auth_type,
        operation_latency_ms=ms(event.latency_ms),
    )


def _close_log(
    event: ev.ConnectionClosed | ev.StatementCancelled | ev.StatementClosed,
) -> SqlDriverLog:
    if isinstance(event, ev.ConnectionClosed):
        return SqlDriverLog(
            session_id=event.session_id,
            sql_operation=_operation(OperationType.DELETE_SESSION),
            operation_latency_ms=ms(event.latency_ms),
        )
    cancelled = isinstance(event, ev.StatementCancelled)
    operation = OperationType.CANCEL_STATEMENT if cancelled else OperationType.CLOSE_STATEMENT
    return SqlDriverLog(sql_statement_id=event.statement_id, sql_operation=_operation(operation))


def _operation(operation: OperationType) -> SqlExecutionEvent:
    """The `sql_operation` of a close log: one frozen record per operation type, shared."""
    shared = _OPERATIONS.get(operation)
    if shared is None:
        shared = _OPERATIONS[operation] = SqlExecutionEvent(
            operation_detail=OperationDetail(operation_type=operation)
        )
    return shared


_OPERATIONS: dict[OperationType, SqlExecutionEvent] = {}
