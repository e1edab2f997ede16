"""A small real driver workload for the OTLP tests: sqlite3 statements told as telemetry events.

One connection per call: a connect, `STATEMENTS` queries fetched in chunks, one failing statement
whose error text holds a secret and a SQL literal, then a close. Returns what the logs must say.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import attrs

import actors
from messages import events as ev
from messages.enums import ExecutionResultFormat, StatementType
from messages.errors import error_code
from messages.records import DriverConnectionParams

DRIVER = actors.DriverInfo(name="OtlpTestDriver", version="2.1.0", client_app_name="billing-app")
STATEMENTS = 3
SECRET = "dapi0123456789abcdef0123456789abcdef"
LITERAL = "alice@example.com"
QUERY_TEXT = "SELECT k, v FROM t WHERE k >= ?"
HTTP_PATH = "/sql/1.0/warehouses/otlp-test"


@attrs.define
class Told:
    """What a workload told: events, the logs they make, rows the driver really read."""

    events: int = 0
    statements: list[str] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    sessions: list[str] = attrs.Factory(list)
    rows: list[Any] = attrs.Factory(list)
    entry: dict[str, Any] = attrs.Factory(dict)  # the host's dump_state() entry, at the end

    @property
    def logs(self) -> int:
        """connection + statements + failing statement + close, per session."""
        return len(self.sessions) * (STATEMENTS + 3)


def run_connection(telemetry: actors.Connection, sid: str, told: Told) -> None:
    """Drive one sqlite3 connection and tell `telemetry` about all of it."""

    def tell(event: object) -> None:
        told.events += 1
        telemetry.tell(event)

    told.sessions.append(sid)
    db = sqlite3.connect(":memory:")
    params = DriverConnectionParams(http_path=HTTP_PATH)
    tell(
        ev.ConnectionOpened(
            session_id=sid, auth_type="pat", latency_ms=3.0, connection_params=params
        )
    )
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(10)])
    for k in range(STATEMENTS):
        stid = f"{sid}/q{k}"
        told.statements.append(stid)
        tell(ev.StatementStarted(statement_id=stid, session_id=sid))
        t0 = time.perf_counter()
        cursor = db.execute(QUERY_TEXT, (k * 3,))
        chunk = 0
        while part := cursor.fetchmany(4):
            told.rows.extend(part)
            tell(ev.ChunkDownloaded(statement_id=stid, chunk_index=chunk, latency_ms=0.2))
            chunk += 1
        tell(
            ev.StatementCompleted(
                statement_id=stid,
                execution_result=ExecutionResultFormat.INLINE_ARROW,
                operation_latency_ms=(time.perf_counter() - t0) * 1000 + 20.0 * k,
                total_chunks_present=chunk,
            )
        )
    bad = f"{sid}/bad"
    tell(ev.StatementStarted(statement_id=bad, session_id=sid, statement_type=StatementType.SQL))
    try:
        db.execute(f"SELEC * FROM t WHERE v = '{LITERAL}'")
    except sqlite3.Error as exc:
        told.errors.append(bad)
        message = f"{exc} near '{LITERAL}' token={SECRET}"
        tell(
            ev.ErrorOccurred(
                error_name=type(exc).__name__,
                error_code=error_code(exc),
                message=message,
                statement_id=bad,
                session_id=sid,
                retryable=False,
            )
        )
    tell(ev.ConnectionClosed(session_id=sid, latency_ms=0.5))
    db.close()
