"""Telemetry for any PEP 249 driver with one call: ``db = instrument(sqlite3, host=...)``.

``instrument(module_or_connect, host=...)`` returns a module-like object whose ``connect()``
returns an instrumented connection; ``instrument_connection(raw, host=...)`` wraps a connection
that is already open. For psycopg 3 and psycopg2 the connection and its cursors are the driver's
own types: ``instrument()`` connects through the driver's class hooks (a `Connection` subclass
and its cursor factories; ``connection_factory`` / ``cursor_factory``) with subclasses that tell.
Any other driver's objects are wrapped (`InstrumentedConnection`, `InstrumentedCursor`): same
results, the very same exception objects re-raised, the same methods present and absent (a
connection-level ``execute`` is the driver's own, its returned cursor wrapped), anything not
wrapped passing through, reads and writes alike. Either way events go to `actors.connect()`'s
`Connection`, which never blocks and never raises. No SQL text, parameter or row value is ever
put in an event.

Events, per DB connection (session and statement ids: UUID-shaped, see `actors._runtime.ids`).
A statement is folded by its cursor while it runs and told once, as one ``StatementSummary``,
when it ends: one event per statement, not a start, a chunk per fetch and a completion.

- connect: ``ConnectionOpened`` (latency measured around the driver's own connect); a failed
  connect tells ``ErrorOccurred`` on a short-lived telemetry connection instead.
- ``execute``/``executemany``/``executescript``/``callproc``/copies/catalog functions start a
  statement (type from the query's first keyword, also of ``bytes`` and composed queries;
  catalog functions METADATA with a ``LIST_*`` operation type), then the driver call. One
  without a result set (``description is None``, not a server-side cursor) ends at once. One
  with a result set stays open while it is fetched. A ``nextset()`` that moves on ends it and
  starts the next result set's own statement, chunks from 0 (see `actors.dbapi._telling`).
- fetches: each ``fetchmany``/``fetchall`` call that returned rows is a chunk; rows taken one
  at a time (``fetchone``, iteration) are gathered into one chunk per `ROWS_PER_CHUNK` rows, so
  per-row cost is two clock reads and a few additions.
- the end, whichever comes first: the result exhausted (then ``total_chunks_present`` is
  known), the next execute, cursor close, cursor ``with`` exit or garbage collection, the
  connection's close or collection, or the exit hook. ``operation_latency_ms`` and
  ``result_ready_latency_ms`` are the execute call; ``consumption_latency_ms`` from then to the
  end. ``StatementClosed`` is never told: for a statement already emitted the aggregator would
  make a second, ``CLOSE_STATEMENT`` log of it.
- a driver exception: its ``ErrorOccurred`` (class name, message and SQLSTATE or vendor code per
  `messages.errors`, the message masked downstream, retryable per `actors.classify_exception`)
  goes into the statement's summary, then the original exception is re-raised unchanged. A
  terminal error ends the statement uncompleted; after a retryable one it completes.
  ``commit``, ``rollback``, ``cursor()`` and ``close`` failures are told as session errors
  without a statement.
- ``close`` (also a ``with`` that closes, as psycopg 3's): open statements are told, then
  ``ConnectionClosed`` and the telemetry connection is released (also when a never-closed
  connection is garbage collected, and at exit).

A driver that owns its code (pyodbc-style, with its own connection and cursor classes) should
embed the library instead of being wrapped, because only it knows the server's statement ids,
result chunks and status polls::

    import actors
    from messages import events as ev

    DRIVER = actors.DriverInfo(name="MyDriver", version=__version__)

    class Connection:
        def __init__(self, host, token, properties):
            self._server = _open_session(host, token)               # the driver's own work
            self._telemetry = actors.connect(                       # never waits on the network
                host, properties, driver=DRIVER,
                auth=lambda: {"Authorization": f"Bearer {token}"},
            )
            self._telemetry.tell(ev.ConnectionOpened(session_id=self._server.session_id))

        def close(self):
            self._server.close()
            self._telemetry.tell(ev.ConnectionClosed(session_id=self._server.session_id))
            self._telemetry.close()

    # and in the cursor: tell StatementStarted with the server's statement id, OperationPolled
    # per status poll, ChunkDownloaded per downloaded chunk, StatementCompleted at the end (or
    # fold them and tell one StatementSummary when the statement ends, as this wrapper does).
"""

from __future__ import annotations

from actors.dbapi.connection import (
    InstrumentedConnection,
    InstrumentedModule,
    instrument,
    instrument_connection,
)
from actors.dbapi.cursor import ROWS_PER_CHUNK, InstrumentedCursor
from actors.dbapi.support import driver_info_of, statement_type_of

__all__ = [
    "ROWS_PER_CHUNK",
    "InstrumentedConnection",
    "InstrumentedCursor",
    "InstrumentedModule",
    "driver_info_of",
    "instrument",
    "instrument_connection",
    "statement_type_of",
]
