"""Read-only aggregations of the log store for the page: every count, histogram and group is
computed in SQL (indexed), so an answer stays small and fast however many logs are stored."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .store import LogStore

# The five characters after the word SQLSTATE (past any ' :=[(' ); checked in Python.
_SQLSTATE = (
    "CASE WHEN instr(upper(error_message), 'SQLSTATE') > 0 THEN upper(substr(ltrim(substr("
    "error_message, instr(upper(error_message), 'SQLSTATE') + 8, 16), ' :=[('), 1, 5)) END"
)
_SQLSTATE_CODE = re.compile(r"[0-9A-Z]{5}")
# Histogram bucket upper bounds in ms (1-2-5 steps); the last bucket is open.
BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
SERIES_POINTS = 60
KINDS = ("connection", "statement", "error", "close", "volume", "other")
_LOG_COLUMNS = (
    "id, received_at_ms, host, path, authorized, kind, session_id, sql_statement_id, "
    "statement_type, operation_latency_ms, error_name, operation_type, client_ts_ms, raw_json"
)


@attrs.frozen(kw_only=True)
class Filters:
    """What the page asks to see: one host, one kind, logs received at or after `since_ms`."""

    host: str | None = None
    kind: str | None = None
    since_ms: int | None = None

    @property
    def table(self) -> str:
        """The table to read; with a window, through the index on arrival time (SQLite's planner
        would otherwise pick an index matching the GROUP BY and read every row)."""
        if self.since_ms is None:
            return "frontend_logs"
        return "frontend_logs INDEXED BY frontend_logs_received"

    def where(self, *conditions: str) -> tuple[str, list[object]]:
        """A `WHERE` clause of these filters and extra `conditions`, and its parameters."""
        parts, params = list(conditions), list[object]()
        for clause, value in (
            ("host = ?", self.host),
            ("kind = ?", self.kind),
            ("received_at_ms >= ?", self.since_ms),
        ):
            if value is not None:
                parts.append(clause)
                params.append(value)
        return ("WHERE " + " AND ".join(parts) if parts else ""), params


class Reader:
    """Read-only queries: a file store gets its own `mode=ro` connection (writers never wait
    for the page, SQLite itself refuses writes); an in-memory store shares the store's lock."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        path = store.db_path
        if path and path != ":memory:" and not path.startswith("file:"):
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")

    def __call__(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            return self._store.read(sql, params)
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the read connection, if any; idempotent."""
        if self._db is not None:
            with self._lock:
                self._db.close()


def percentile(counts: Sequence[tuple[int, int]], fraction: float) -> float:
    """The store's percentile (linear between closest ranks) of sorted (value, count) pairs."""
    total = sum(n for _, n in counts)
    position = (total - 1) * fraction
    low, high = math.floor(position), math.ceil(position)

    def at(rank: int) -> int:
        seen = 0
        for value, n in counts:
            seen += n
            if rank < seen:
                return value
        return counts[-1][0]

    low_value, high_value = at(low), at(high)
    return float(low_value + (high_value - low_value) * (position - low))


def distribution(counts: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Count, mean, p50/p90/p99, max and a bucketed histogram of (latency, count) pairs."""
    total = sum(n for _, n in counts)
    buckets = [0] * (len(BUCKETS_MS) + 1)
    for value, n in counts:
        index = next((i for i, bound in enumerate(BUCKETS_MS) if value < bound), len(BUCKETS_MS))
        buckets[index] += n
    last = max((i for i, n in enumerate(buckets) if n), default=0)
    return {
        "count": total,
        "mean": round(sum(v * n for v, n in counts) / total, 3),
        "p50": round(percentile(counts, 0.5), 3),
        "p90": round(percentile(counts, 0.9), 3),
        "p99": round(percentile(counts, 0.99), 3),
        "max": counts[-1][0],
        "histogram": [
            {"lt_ms": BUCKETS_MS[i] if i < len(BUCKETS_MS) else None, "count": buckets[i]}
            for i in range(last + 1)
        ],
    }


def kind_counts(read: Reader, filters: Filters) -> dict[str, int]:
    """Stored logs per kind."""
    where, params = filters.where()
    return dict(read(f"SELECT kind, COUNT(*) FROM {filters.table} {where} GROUP BY kind", params))


def hosts(read: Reader) -> dict[str, int]:
    """Every Host header logs were stored for, with its number of logs (unfiltered)."""
    return dict(read("SELECT host, COUNT(*) FROM frontend_logs GROUP BY host ORDER BY host"))


def latency(read: Reader, filters: Filters) -> dict[str, dict[str, Any]]:
    """Latency distributions per statement type and per operation type."""
    result: dict[str, dict[str, Any]] = {}
    for column in ("statement_type", "operation_type"):
        where, params = filters.where(f"{column} IS NOT NULL", "operation_latency_ms IS NOT NULL")
        rows = read(
            f"SELECT {column}, operation_latency_ms, COUNT(*) FROM {filters.table} {where} "
            f"GROUP BY {column}, operation_latency_ms ORDER BY {column}, operation_latency_ms",
            params,
        )
        grouped: dict[str, list[tuple[int, int]]] = {}
        for group, value, n in rows:
            grouped.setdefault(str(group), []).append((int(value), int(n)))
        result[column] = {group: distribution(counts) for group, counts in grouped.items()}
    return result


def series(read: Reader, filters: Filters, now_ms: int) -> dict[str, Any]:
    """Statements and errors per second over the window, by the client's timestamps, in at most
    `SERIES_POINTS` steps of at least 250 ms."""
    where, params = filters.where("client_ts_ms IS NOT NULL")
    # MIN and MAX apart: each alone is one step along the index on client_ts_ms.
    first = read(f"SELECT MIN(client_ts_ms) FROM {filters.table} {where}", params)[0][0]
    if first is None:
        return {"start_ms": None, "step_ms": 1000, "statements": [], "errors": []}
    last = read(f"SELECT MAX(client_ts_ms) FROM {filters.table} {where}", params)[0][0]
    start_ms = filters.since_ms if filters.since_ms is not None else int(first)
    end_ms = max(int(last), now_ms if filters.since_ms is not None else int(last)) + 1
    step_ms = max(250, math.ceil((end_ms - start_ms) / SERIES_POINTS / 250) * 250)
    points = max(1, math.ceil((end_ms - start_ms) / step_ms))
    where, params = filters.where("client_ts_ms >= ?", "kind IN ('statement', 'error')")
    rows = read(
        f"SELECT kind, (client_ts_ms - ?) / ?, COUNT(*) FROM {filters.table} {where} GROUP BY 1, 2",
        [start_ms, step_ms, start_ms, *params],
    )
    out: dict[str, list[float]] = {"statement": [0.0] * points, "error": [0.0] * points}
    for kind, bucket, n in rows:
        if 0 <= bucket < points:
            out[kind][int(bucket)] = round(n * 1000 / step_ms, 3)
    return {
        "start_ms": start_ms,
        "step_ms": step_ms,
        "statements": out["statement"],
        "errors": out["error"],
    }


def error_groups(read: Reader, filters: Filters, limit: int = 50) -> list[dict[str, Any]]:
    """Errors grouped by class and SQLSTATE, most frequent first, with the latest masked message."""
    where, params = filters.where("error_name IS NOT NULL")
    rows = read(
        f"SELECT error_name, {_SQLSTATE}, COUNT(*), COUNT(DISTINCT error_message), error_message, "
        f"MAX(id), MAX(received_at_ms) FROM {filters.table} {where} GROUP BY 1, 2",
        params,
    )
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for name, raw_state, n, distinct, message, latest_id, last_ms in rows:
        state = raw_state if raw_state and _SQLSTATE_CODE.fullmatch(raw_state) else None
        group = groups.setdefault(
            (name, state),
            {"error_name": name, "sqlstate": state, "count": 0, "messages": 0, "latest_id": 0},
        )
        group["count"] += n
        group["messages"] += distinct
        if latest_id > group["latest_id"]:
            group.update(latest_id=latest_id, message=message, last_ms=last_ms)
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["error_name"]))
    return ordered[:limit]


def logs(
    read: Reader, filters: Filters, *, since_id: int = 0, before_id: int | None = None, limit: int
) -> list[dict[str, Any]]:
    """The newest `limit` logs with id > `since_id` (and < `before_id`), newest first."""
    conditions = ["id > ?"] + (["id < ?"] if before_id is not None else [])
    where, params = filters.where(*conditions)
    bounds: list[object] = [since_id, *([before_id] if before_id is not None else [])]
    rows = read(
        f"SELECT {_LOG_COLUMNS} FROM frontend_logs {where} ORDER BY id DESC LIMIT ?",
        [*bounds, *params, limit],
    )
    return [_log(row) for row in rows]


def _log(row: tuple[Any, ...]) -> dict[str, Any]:
    (
        id_,
        received,
        host,
        path,
        authorized,
        kind,
        session,
        statement,
        stype,
        latency_ms,
        error,
        operation,
        client_ms,
        raw,
    ) = row
    entry = json.loads(raw)["entry"]["sql_driver_log"]
    return {
        "id": id_,
        "received_at_ms": received,
        "timestamp_ms": client_ms,
        "host": host,
        "path": path,
        "authorized": bool(authorized),
        "kind": kind,
        "session_id": session,
        "sql_statement_id": statement,
        "statement_type": stype,
        "operation_type": operation,
        "operation_latency_ms": latency_ms,
        "error_name": error,
        "error_message": entry.get("error_info", {}).get("stack_trace"),
        "entry": entry,
    }


def last_id(read: Reader, filters: Filters) -> int:
    """The id of the newest log matching the filters (0 when none)."""
    where, params = filters.where()
    return int(read(f"SELECT COALESCE(MAX(id), 0) FROM frontend_logs {where}", params)[0][0])


def rejections(read: Reader, host: str | None, limit: int = 20) -> dict[str, dict[str, Any]]:
    """Per host: how many bodies were refused, and the newest `limit` with their reasons."""
    where, params = ("WHERE host = ?", [host]) if host is not None else ("", [])
    counts = read(f"SELECT host, COUNT(*) FROM rejected_bodies {where} GROUP BY host", params)
    out: dict[str, dict[str, Any]] = {}
    for name, n in counts:
        latest = read(
            "SELECT received_at_ms, path, status, reason, size_bytes FROM rejected_bodies "
            "WHERE host = ? ORDER BY id DESC LIMIT ?",
            [name, limit],
        )
        out[name] = {
            "count": n,
            "latest": [
                dict(
                    zip(
                        ("received_at_ms", "path", "status", "reason", "size_bytes"), r, strict=True
                    )
                )
                for r in latest
            ],
        }
    return out
