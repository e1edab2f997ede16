"""The page's SQL aggregations agree with the store's own queries (synchronous, in memory)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from page_data import frontend_log

from actors.tools.local_endpoint import LogStore
from actors.tools.local_endpoint.insights import (
    Filters,
    Reader,
    error_groups,
    hosts,
    kind_counts,
    last_id,
    latency,
    logs,
    series,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=60))
def test_percentiles_equal_the_stores_for_any_latency_set(latencies: list[int]) -> None:
    store = LogStore()
    try:
        logs = [frontend_log("statement", latency_ms=ms) for ms in latencies]
        store.add(logs, host="h:1", path="/telemetry-ext", authorized=True)
        shown = latency(Reader(store), Filters())["statement_type"]["QUERY"]
        expected = store.latency_percentiles_by_statement_type()["QUERY"]
        assert {p: shown[p] for p in ("p50", "p90", "p99")} == pytest.approx(expected, abs=1e-3)
        assert shown["count"] == len(latencies)
        assert sum(b["count"] for b in shown["histogram"]) == len(latencies)
        assert shown["max"] == max(latencies)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("message", "sqlstate"),
    [
        ("[SQLSTATE 42P01] relation t does not exist", "42P01"),
        ("error: sqlstate=22012 division by zero", "22012"),
        ("[TABLE_OR_VIEW_NOT_FOUND] t not found. SQLSTATE: 42P01", "42P01"),
        ("SQLSTATE(HY000) general error", "HY000"),
        ("no sqlstate here at all", None),
        ("SQLSTATE: ab", None),
        ("UNIQUE constraint failed", None),
    ],
)
def test_errors_are_grouped_by_the_sqlstate_in_their_message(
    message: str, sqlstate: str | None
) -> None:
    store = LogStore()
    try:
        logs = [frontend_log("error", error_name="E", message=message) for _ in range(3)]
        store.add(logs, host="h:1", path="/telemetry-ext", authorized=True)
        (group,) = error_groups(Reader(store), Filters())
        assert (group["sqlstate"], group["count"], group["message"]) == (sqlstate, 3, message)
    finally:
        store.close()


def test_statements_per_second_count_every_statement_once() -> None:
    store = LogStore()
    try:
        base_ms = 1_800_000_000_000
        logs = [frontend_log("statement", timestamp_ms=base_ms + 37 * i) for i in range(500)]
        store.add(logs, host="h:1", path="/telemetry-ext", authorized=True)
        shown = series(Reader(store), Filters(), now_ms=base_ms + 60_000)
        assert len(shown["statements"]) <= 60
        assert sum(shown["statements"]) * shown["step_ms"] / 1000 == pytest.approx(500)
        assert shown["start_ms"] == base_ms
    finally:
        store.close()


class _RecordingReader(Reader):
    """A Reader that remembers every query it ran, to ask SQLite how it planned them."""

    def __init__(self, store: LogStore) -> None:
        super().__init__(store)
        self.queries: list[tuple[str, list[object]]] = []

    def __call__(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self.queries.append((sql, list(params)))
        return super().__call__(sql, params)


@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(host="h:1"),
        Filters(kind="error"),
        Filters(since_ms=1_800_000_000_000),
        Filters(host="h:1", kind="statement", since_ms=1_800_000_000_000),
    ],
)
def test_every_page_query_reads_an_index_never_the_whole_table(filters: Filters) -> None:
    store = LogStore()
    try:
        read = _RecordingReader(store)
        kind_counts(read, filters)
        latency(read, filters)
        series(read, filters, now_ms=1_800_000_060_000)
        error_groups(read, filters)
        logs(read, filters, since_id=0, limit=50)
        last_id(read, filters)
        hosts(read)
        for sql, params in read.queries:
            plan = [row[3] for row in store.read("EXPLAIN QUERY PLAN " + sql, params)]
            full_scans = [step for step in plan if step.startswith("SCAN") and "INDEX" not in step]
            assert not full_scans, (sql, plan)
    finally:
        store.close()
