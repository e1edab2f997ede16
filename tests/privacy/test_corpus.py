"""Real drivers' error messages, planted with random data, through the whole pipeline.

Each driver (sqlite3; pyodbc over the SQLite ODBC driver; psycopg 3 and psycopg2 against a
PostgreSQL of the test session) is instrumented with `actors.dbapi.instrument` and runs the
corpus of `corpus.py` twice with different planted values. The errors go the real way (the
wrapper tells them, the aggregator masks them, the exporter sends them) to a real
`LocalEndpoint` behind a relay that keeps every byte. Then: no planted value, nor any run of
five or more of its letters and digits, is in any byte the endpoint received; no three
consecutive words of any statement run are in any exported text; every failing statement gave
one error log starting with the driver's error code; the same error with different values
masked to the same text. A failed connect naming planted data is told and checked too. A
missing driver or server skips, and fails under CI.
"""

from __future__ import annotations

import pathlib
import random
import re
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from _wire import TOKEN, Wire
from corpus import Plant, postgres_cases, sqlite_cases
from servers import PostgresInfo, require_module
from waiting import poll_until

import actors
from actors.dbapi import instrument

FLUSH_TIMEOUT_S = 10.0
_RUN = re.compile(r"[A-Za-z0-9]{5,}")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|\d+")
SQLITE_CODE = re.compile(r"\[SQLITE_[A-Z_]+\] \S")
ODBC_CODE = re.compile(r"\[HY000\] \S")
SQLSTATE = re.compile(r"\[[0-9A-Z]{5}\] \S")


def instrumented(module: Any, wire: Wire) -> Any:
    """The driver module, instrumented to report to the wire (the flag forced on)."""
    settings = actors.TelemetrySettings(force_enable=True, flush_interval_ms=50, batch_size=500)
    auth: Callable[[], dict[str, str]] = lambda: {"Authorization": f"Bearer {TOKEN}"}  # noqa: E731
    return instrument(module, host=wire.url, auth=auth, settings=settings)


def two_plants() -> list[Plant]:
    seeds = random.SystemRandom()
    return [Plant(random.Random(seeds.getrandbits(64))) for _ in range(2)]


def exported_traces(wire: Wire, count: int) -> dict[str, str]:
    """Flush, wait for `count` error logs; return each one's stack trace by statement id."""
    assert actors.flush(FLUSH_TIMEOUT_S)
    poll_until(lambda: len(wire.error_infos()) >= count, FLUSH_TIMEOUT_S, f"{count} error logs")
    traces = {}
    for log in wire.endpoint.store.logs():
        entry = log["entry"]["sql_driver_log"]
        if "error_info" in entry:
            key = entry.get("sql_statement_id") or f"session-{len(traces)}"
            traces[key] = entry["error_info"].get("stack_trace", "")
    assert len(traces) == count, f"{len(traces)} error logs for {count} errors"
    return traces


def _windows(text: str, size: int = 3) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def assert_nothing_leaked(wire: Wire, plants: list[Plant], traces: dict[str, str]) -> None:
    """No planted value or run of it in the raw bytes or the decoded texts; no echoed words."""
    received = wire.received()
    assert b"POST /telemetry-ext" in received, "nothing was exported"
    exported = "\n".join(traces.values())
    runs = {
        run for plant in plants for value in plant.values for run in [value, *_RUN.findall(value)]
    }
    leaked = sorted(run for run in runs if run.encode() in received or run in exported)
    assert not leaked, f"planted data on the wire: {leaked[:10]}"
    statement_windows = set().union(*(_windows(s) for p in plants for s in p.statements))
    echoed = [t for t in traces.values() if _windows(t) & statement_windows]
    assert not echoed, f"statement fragments exported: {echoed[:3]}"


def assert_coded_and_grouped(
    plants: list[Plant], traces: dict[str, str], code: re.Pattern[str]
) -> None:
    """Each failure's log starts with its code; both runs' errors masked to the same texts."""
    first, second = ([traces[sid] for sid in plant.failed_ids] for plant in plants)
    for trace in first + second:
        assert code.match(trace), trace
    assert first == second, "the same errors with other values masked differently"


def run_twice(connect: Callable[[], Any], case: Any, errors: Any) -> list[Plant]:
    plants = two_plants()
    for plant in plants:
        conn = connect()
        try:
            case(conn.cursor(), plant, errors)
        finally:
            conn.close()
    return plants


def test_sqlite3_errors_reach_the_endpoint_without_planted_data_or_statement_text(
    wire: Wire,
) -> None:
    db = instrumented(sqlite3, wire)
    plants = run_twice(lambda: db.connect(":memory:"), sqlite_cases, (sqlite3.Error,))
    with pytest.raises(sqlite3.OperationalError):  # a failed connect, its path planted
        db.connect(plants[0].path())
    traces = exported_traces(wire, sum(len(p.failed_ids) for p in plants) + 1)
    assert_nothing_leaked(wire, plants, traces)
    assert_coded_and_grouped(plants, traces, SQLITE_CODE)


def test_pyodbc_sqlite_errors_reach_the_endpoint_without_planted_data_or_statement_text(
    wire: Wire, sqlite_odbc: Callable[[Any], str], tmp_path: pathlib.Path
) -> None:
    pyodbc = require_module("pyodbc", "pyodbc")
    db = instrumented(pyodbc, wire)
    files = iter(tmp_path / f"corpus-{i}.db" for i in range(2))
    plants = run_twice(
        lambda: db.connect(sqlite_odbc(next(files)), autocommit=True), sqlite_cases, (pyodbc.Error,)
    )
    # a failed connect is told too: the driver name and the database path it names are planted
    driver, path = plants[0].ident(), plants[0].path()
    with pytest.raises(pyodbc.Error):
        db.connect(f"DRIVER={{{driver}}};Database={path}")
    traces = exported_traces(wire, sum(len(p.failed_ids) for p in plants) + 1)
    assert_nothing_leaked(wire, plants, traces)
    assert_coded_and_grouped(plants, traces, ODBC_CODE)


def _postgres(module_name: str, distribution: str, wire: Wire, postgres: PostgresInfo) -> None:
    module = require_module(module_name, distribution)
    db = instrumented(module, wire)

    def connect() -> Any:
        conn = db.connect(**postgres.kwargs())
        conn.autocommit = True
        return conn

    plants = run_twice(connect, postgres_cases, (module.Error,))
    # a failed connect is told too: the role it names is planted
    role = plants[0].ident()
    with pytest.raises(module.OperationalError):
        db.connect(**{**postgres.kwargs(), "user": role})
    traces = exported_traces(wire, sum(len(p.failed_ids) for p in plants) + 1)
    assert_nothing_leaked(wire, plants, traces)
    assert_coded_and_grouped(plants, traces, SQLSTATE)


def test_psycopg_errors_reach_the_endpoint_without_planted_data_or_statement_text(
    wire: Wire, postgres: PostgresInfo
) -> None:
    _postgres("psycopg", "psycopg[binary]", wire, postgres)


def test_psycopg2_errors_reach_the_endpoint_without_planted_data_or_statement_text(
    wire: Wire, postgres: PostgresInfo
) -> None:
    _postgres("psycopg2", "psycopg2-binary", wire, postgres)
