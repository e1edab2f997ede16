"""How a pyodbc-style driver embeds the library directly: `python examples/embed_driver.py`.

`MiniDriver` stands in for a real driver: its "server" is sqlite3, its telemetry goes to a local
endpoint. The lines marked `# telemetry` are all a driver adds.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

import actors
from actors import ErrorKind, LocalEndpoint, classify_exception
from messages import events as ev
from messages.enums import ExecutionResultFormat, StatementType

DRIVER = actors.DriverInfo(name="MiniDriver", version="0.1.0")  # telemetry


class Connection:
    """A DB-API connection of the mini driver, with telemetry embedded."""

    def __init__(self, host: str, token: str, http_path: str, **properties: Any) -> None:
        started = time.perf_counter()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._session_id = str(uuid.uuid4())
        self._token = token
        self._telemetry = actors.connect(  # telemetry: never waits on the network
            host,
            properties,
            driver=DRIVER,
            http_path=http_path,
            auth=lambda: {"Authorization": f"Bearer {self._token}"},  # current token, per call
        )
        self._telemetry.tell(  # telemetry
            ev.ConnectionOpened(
                session_id=self._session_id,
                auth_type="pat",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and fetch its rows."""
        statement_id, started = str(uuid.uuid4()), time.perf_counter()
        telemetry = self._telemetry
        if telemetry.enabled:  # telemetry: skip building events when nobody wants them
            telemetry.tell(
                ev.StatementStarted(
                    statement_id=statement_id,
                    session_id=self._session_id,
                    statement_type=StatementType.QUERY,
                )
            )
        try:
            cursor = self._db.execute(sql, params)
            ready_ms = (time.perf_counter() - started) * 1000
            fetch_started = time.perf_counter()
            rows = cursor.fetchall()
            fetch_ms = (time.perf_counter() - fetch_started) * 1000
        except Exception as exc:
            telemetry.tell(  # telemetry: the message is masked before export
                ev.ErrorOccurred(
                    error_name=type(exc).__name__,
                    message=str(exc),
                    statement_id=statement_id,
                    session_id=self._session_id,
                    retryable=classify_exception(exc) is ErrorKind.RETRYABLE,
                )
            )
            raise
        telemetry.tell(
            ev.ChunkDownloaded(statement_id=statement_id, chunk_index=0, latency_ms=fetch_ms)
        )
        telemetry.tell(
            ev.StatementCompleted(
                statement_id=statement_id,
                execution_result=ExecutionResultFormat.INLINE_JSON,
                result_ready_latency_ms=ready_ms,
                consumption_latency_ms=fetch_ms,
                operation_latency_ms=(time.perf_counter() - started) * 1000,
                total_chunks_present=1,
            )
        )
        return rows

    def close(self) -> None:
        """Close the session; a host's tree lingers after its last connection, then stops."""
        self._db.close()
        self._telemetry.tell(ev.ConnectionClosed(session_id=self._session_id))  # telemetry
        self._telemetry.close()  # telemetry


def main() -> None:
    """Run a few statements against a local endpoint and print what it stored."""
    with LocalEndpoint(token="secret-token") as endpoint:
        conn = Connection(endpoint.url, "secret-token", "/sql/1.0/warehouses/abc?o=1234567890")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (?)", (42,))
        print("rows:", conn.execute("SELECT x FROM t"))
        try:
            conn.execute("SELECT * FROM no_such_table WHERE name = 'alice'")
        except sqlite3.OperationalError as exc:
            print("driver error:", exc)
        conn.close()
        actors.shutdown(2.0)  # at interpreter exit this happens by itself, bounded
        for row in endpoint.store.rows():
            print(row["kind"], row["statement_type"], row["error_name"])
        accounting = actors.dump_state()["hosts"][endpoint.host_port]["accounting"]
        print("accounting:", accounting)


if __name__ == "__main__":
    main()
