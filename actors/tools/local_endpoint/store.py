"""SQLite store of the frontend logs a local endpoint accepted, with the queries tests ask."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frontend_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    path TEXT NOT NULL,
    authorized INTEGER NOT NULL,
    frontend_log_event_id TEXT NOT NULL UNIQUE,
    session_id TEXT,
    sql_statement_id TEXT,
    kind TEXT NOT NULL,
    statement_type TEXT,
    operation_latency_ms INTEGER,
    error_name TEXT,
    raw_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS frontend_logs_host ON frontend_logs (host, id);
CREATE TABLE IF NOT EXISTS rejected_bodies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    size_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_bodies_host ON rejected_bodies (host, id);
"""
_REASON_CHARS = 500
# The page's queries (insights.py) aggregate in SQL. Virtual columns are computed from raw_json and
# stored only in the indexes, so grouping by them reads an index, never the JSON of 100k logs.
_PAGE_COLUMNS = {
    "client_ts_ms": "INTEGER AS "
    "(json_extract(raw_json, '$.context.client_context.timestamp_millis')) VIRTUAL",
    "operation_type": "TEXT AS (json_extract(raw_json, "
    "'$.entry.sql_driver_log.sql_operation.operation_detail.operation_type')) VIRTUAL",
    "error_message": "TEXT AS "
    "(json_extract(raw_json, '$.entry.sql_driver_log.error_info.stack_trace')) VIRTUAL",
}
_PAGE_INDEXES = """
CREATE INDEX IF NOT EXISTS frontend_logs_kind ON frontend_logs (kind, id);
CREATE INDEX IF NOT EXISTS frontend_logs_received ON frontend_logs (received_at_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_latency
    ON frontend_logs (statement_type, operation_latency_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_operation
    ON frontend_logs (operation_type, operation_latency_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_kind_time ON frontend_logs (kind, client_ts_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_client_time ON frontend_logs (client_ts_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_errors
    ON frontend_logs (error_name, error_message) WHERE error_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS frontend_logs_host_latency
    ON frontend_logs (host, statement_type, operation_latency_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_host_operation
    ON frontend_logs (host, operation_type, operation_latency_ms);
CREATE INDEX IF NOT EXISTS frontend_logs_host_time ON frontend_logs (host, kind, client_ts_ms);
"""


def _add_page_columns(db: sqlite3.Connection) -> None:
    """Add the page's virtual columns (to a store made before them) and their indexes. Never
    raises: without them (another process adding them at the same moment, an SQLite without
    generated columns) the endpoint still stores logs; only the page's queries fail."""
    try:
        present = {row[1] for row in db.execute("PRAGMA table_xinfo(frontend_logs)")}
        for name, declaration in _PAGE_COLUMNS.items():
            if name not in present:
                db.execute(f"ALTER TABLE frontend_logs ADD COLUMN {name} {declaration}")
        db.executescript(_PAGE_INDEXES)
    except sqlite3.Error:
        pass


_COLUMNS = (
    "id",
    "received_at_ms",
    "host",
    "path",
    "authorized",
    "frontend_log_event_id",
    "session_id",
    "sql_statement_id",
    "kind",
    "statement_type",
    "operation_latency_ms",
    "error_name",
    "raw_json",
)
_INSERT = (
    f"INSERT OR IGNORE INTO frontend_logs ({', '.join(_COLUMNS[1:])}) "
    f"VALUES ({', '.join('?' * (len(_COLUMNS) - 1))})"
)


def derive_kind(log: dict[str, Any]) -> str:
    """Classify a frontend log, first match wins: error, close, statement, volume, connection.

    An error is the most telling fact, so `error_info` wins even beside an `sql_operation`; a
    DELETE_SESSION operation is the session's closing log, not a statement; anything left is
    'other'.
    """
    entry = log["entry"]["sql_driver_log"]
    operation = entry.get("sql_operation")
    if "error_info" in entry:
        return "error"
    if operation is not None:
        detail = operation.get("operation_detail", {})
        return "close" if detail.get("operation_type") == "DELETE_SESSION" else "statement"
    if "vol_operation" in entry:
        return "volume"
    if "driver_connection_params" in entry or "system_configuration" in entry:
        return "connection"
    return "other"


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _host_filter(host: str | None, keyword: str) -> tuple[str, list[object]]:
    """A `WHERE`/`AND` clause restricting a query to one Host, or nothing."""
    return (f"{keyword} host = ?", [host]) if host is not None else ("", [])


class LogStore:
    """Durable log of accepted frontend logs; safe from any thread (one connection, one lock)."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self._lock = threading.Lock()
        # One shared connection behind a lock: simpler than per-thread connections, and the only
        # way a ':memory:' database is visible to every handler thread.
        self.db_path = db_path
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        _add_page_columns(self._db)

    def add(
        self,
        logs: Sequence[dict[str, Any]],
        *,
        host: str,
        path: str,
        authorized: bool,
        received_at_ms: int | None = None,
    ) -> int:
        """Store validated logs in one transaction; return how many were new (ids are unique)."""
        now_ms = int(time.time() * 1000) if received_at_ms is None else received_at_ms
        rows = []
        for log in logs:
            entry = log["entry"]["sql_driver_log"]
            rows.append(
                (
                    now_ms,
                    host,
                    path,
                    int(authorized),
                    log["frontend_log_event_id"],
                    entry.get("session_id"),
                    entry.get("sql_statement_id"),
                    derive_kind(log),
                    entry.get("sql_operation", {}).get("statement_type"),
                    entry.get("operation_latency_ms"),
                    entry.get("error_info", {}).get("error_name"),
                    json.dumps(log),
                )
            )
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def count(self, host: str | None = None) -> int:
        """Number of stored logs (optionally of one Host)."""
        where, params = _host_filter(host, "WHERE")
        return int(self._query(f"SELECT COUNT(*) FROM frontend_logs {where}", params)[0][0])

    def counts_by_kind(self, host: str | None = None) -> dict[str, int]:
        """Stored logs per derived kind (optionally of one Host)."""
        where, params = _host_filter(host, "WHERE")
        return dict(
            self._query(f"SELECT kind, COUNT(*) FROM frontend_logs {where} GROUP BY kind", params)
        )

    def errors_by_name(self, host: str | None = None) -> dict[str, int]:
        """Stored error logs per `error_name` (optionally of one Host)."""
        where, params = _host_filter(host, "AND")
        return dict(
            self._query(
                "SELECT error_name, COUNT(*) FROM frontend_logs "
                f"WHERE error_name IS NOT NULL {where} GROUP BY error_name",
                params,
            )
        )

    def rows(self, host: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` rows (optionally of one Host), newest first, as column dicts."""
        where, params = ("WHERE host = ?", [host]) if host is not None else ("", [])
        found = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM frontend_logs {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        result = [dict(zip(_COLUMNS, row, strict=True)) for row in found]
        for row in result:
            row["authorized"] = bool(row["authorized"])
        return result

    def logs(self) -> list[dict[str, Any]]:
        """Every stored frontend log, decoded, in arrival order."""
        found = self._query("SELECT raw_json FROM frontend_logs ORDER BY id")
        return [json.loads(raw) for (raw,) in found]

    def latency_percentiles_by_statement_type(
        self, host: str | None = None
    ) -> dict[str, dict[str, float]]:
        """p50/p90/p99 of `operation_latency_ms` per statement type (logs that carry both)."""
        where, params = _host_filter(host, "AND")
        found = self._query(
            "SELECT statement_type, operation_latency_ms FROM frontend_logs "
            f"WHERE statement_type IS NOT NULL AND operation_latency_ms IS NOT NULL {where} "
            "ORDER BY statement_type, operation_latency_ms",
            params,
        )
        by_type: dict[str, list[int]] = {}
        for statement_type, latency_ms in found:
            by_type.setdefault(statement_type, []).append(latency_ms)
        return {
            statement_type: {
                name: _percentile(values, fraction)
                for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
            }
            for statement_type, values in by_type.items()
        }

    def add_rejection(
        self, *, host: str, path: str, status: int, reason: str, size_bytes: int
    ) -> None:
        """Remember a body refused as invalid (the reason, never the body); never raises."""
        row = (int(time.time() * 1000), host, path, status, reason[:_REASON_CHARS], size_bytes)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO rejected_bodies (received_at_ms, host, path, status, reason, "
                    "size_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
        except sqlite3.Error:
            pass  # losing a note about a bad body must not turn its 400 into a 500

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one read query on the shared connection (the page's queries; see insights.py)."""
        return self._query(sql, params)

    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            self._db.close()
