"""An instrumented sqlite3 workload, told through the whole pipeline to a real local endpoint.

Several threads each run the same workload on their own DB connection (as sqlite3 requires).
Every statement the workload runs is known by its telemetry statement id, so each stored log is
checked against what the workload did: one connection log and one close log per connection, one
statement log per statement with chunk details matching its fetches, an error log naming the
exception class for each failing statement, no SQL text or parameter value anywhere, and
balanced accounts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
import pytest

import actors
from actors.dbapi import ROWS_PER_CHUNK, instrument
from actors.tools.local_endpoint import LocalEndpoint

if TYPE_CHECKING:
    from .conftest import Harness

THREADS = 4
ROWS = 2 * ROWS_PER_CHUNK + 25
JOIN_TIMEOUT_S = 10.0
TABLE = "zebra_ledger_q4"
SQL_LITERAL = "sql-literal-ab19"
PARAM_PREFIX = "param-value-cd73-"
MISSING_TABLE = "ghost_table_q8"


@attrs.define
class Statement:
    """What the workload did with one statement, and so what its log must say."""

    sid: str
    kind: str  # "statement" or "error"
    statement_type: str
    chunks: int = 0  # fetch calls that became chunks
    present: int | None = None  # total_chunks_present: known once the result was exhausted
    error_name: str | None = None


@attrs.define
class Session:
    """One thread's DB connection and its statements."""

    session_id: str
    statements: list[Statement] = attrs.Factory(list)


def workload(db: Any) -> Session:
    """Create, insert, read in every way, fail twice, read partly, close."""
    conn = db.connect(":memory:")
    session = Session(conn.telemetry_session_id)
    cur = conn.cursor()

    def ran(kind: str, statement_type: str, **facts: Any) -> Statement:
        statement = Statement(cur.telemetry_statement_id, kind, statement_type, **facts)
        session.statements.append(statement)
        return statement

    cur.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, label TEXT UNIQUE)")
    ran("statement", "SQL")
    cur.executemany(
        f"INSERT INTO {TABLE} (label) VALUES (?)", [(f"{PARAM_PREFIX}{i}",) for i in range(ROWS)]
    )
    ran("statement", "UPDATE")
    conn.commit()

    cur.execute(f"SELECT id, label FROM {TABLE} WHERE label <> '{SQL_LITERAL}' ORDER BY id")
    assert cur.fetchone() == (1, f"{PARAM_PREFIX}0")
    assert cur.fetchone() is not None
    assert len(cur.fetchmany(10)) == 10
    assert len(cur.fetchall()) == ROWS - 12
    # fetchone x2 (one gathered chunk), fetchmany, fetchall
    ran("statement", "QUERY", chunks=3, present=3)

    assert sum(1 for _ in cur.execute(f"SELECT id FROM {TABLE}")) == ROWS
    iterated = -(-ROWS // ROWS_PER_CHUNK)
    ran("statement", "QUERY", chunks=iterated, present=iterated)

    with pytest.raises(sqlite3.IntegrityError):
        cur.execute(f"INSERT INTO {TABLE} (label) VALUES (?)", (f"{PARAM_PREFIX}0",))
    ran("error", "UPDATE", error_name="IntegrityError")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute(f"SELECT * FROM {MISSING_TABLE} WHERE x = '{SQL_LITERAL}'")
    # Its statement id was on the connection's throwaway cursor: checked by error name only.
    session.statements.append(Statement("", "error", "QUERY", error_name="OperationalError"))

    cur.execute(f"SELECT label FROM {TABLE}")
    assert len(cur.fetchmany(5)) == 5
    cur.close()  # before the end of the result: complete, total unknown
    ran("statement", "QUERY", chunks=1, present=None)
    conn.close()
    return session


def run_threads(db: Any) -> list[Session]:
    sessions: list[Session] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            sessions.append(workload(db))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, name=f"dbapi-worker-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    return sessions


@pytest.fixture
def telemetry_db(endpoint: LocalEndpoint, token: str, harness: Harness) -> Iterator[Any]:
    """Instrumented sqlite3 to the endpoint, with a keeper connection holding the host's tree
    (so `flush()` can synchronise) and the feature flag already known."""
    settings = actors.TelemetrySettings(flush_interval_ms=50, retry_delay_ms=10, breaker_open_s=1)

    def auth() -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    keeper = actors.connect(
        endpoint.url,
        driver=actors.DriverInfo(name="sqlite3", version="keeper"),
        auth=auth,
        settings=settings,
    )
    harness.wait_until(
        lambda: harness.report(endpoint.host_port)["aggregator"]["flag"] == "on",
        what="the feature flag",
    )
    yield instrument(sqlite3, host=endpoint.url, auth=auth, auth_type="pat", settings=settings)
    keeper.close()


def stored(endpoint: LocalEndpoint) -> list[dict[str, Any]]:
    return endpoint.store.rows(limit=10_000)


def by_kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["kind"] == kind]


def sql_log(row: dict[str, Any]) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(row["raw_json"])["entry"]["sql_driver_log"]
    return log


def test_threaded_workload_stores_one_log_per_connection_statement_error_and_close(
    endpoint: LocalEndpoint, telemetry_db: Any, harness: Harness
) -> None:
    sessions = run_threads(telemetry_db)
    assert actors.flush(5.0)
    rows = stored(endpoint)
    session_ids = {s.session_id for s in sessions}
    assert len(session_ids) == THREADS

    connection_logs = by_kind(rows, "connection")
    assert sorted(r["session_id"] for r in connection_logs) == sorted(session_ids)
    for row in connection_logs:
        log = sql_log(row)
        assert log["auth_type"] == "pat"
        assert log["operation_latency_ms"] >= 0  # the driver's connect, timed
        assert log["system_configuration"]["driver_name"] == "sqlite3"

    close_logs = by_kind(rows, "close")
    assert sorted(r["session_id"] for r in close_logs) == sorted(session_ids)

    statements = {row["sql_statement_id"]: row for row in by_kind(rows, "statement")}
    errors = by_kind(rows, "error")
    expected_statements = [st for s in sessions for st in s.statements if st.kind == "statement"]
    assert len(statements) == len(by_kind(rows, "statement")) == len(expected_statements)
    for expected in expected_statements:
        row = statements[expected.sid]
        operation = sql_log(row)["sql_operation"]
        assert operation["statement_type"] == expected.statement_type
        assert operation["operation_detail"]["operation_type"] == "EXECUTE_STATEMENT"
        assert operation["result_latency"]["result_set_ready_latency_millis"] >= 0
        chunks = operation.get("chunk_details")
        if expected.chunks:
            assert chunks["total_chunks_iterated"] == expected.chunks
            assert chunks.get("total_chunks_present") == expected.present
            assert "result_set_consumption_latency_millis" in operation["result_latency"]
        else:
            assert chunks is None

    assert sorted(r["error_name"] for r in errors) == sorted(
        ["IntegrityError", "OperationalError"] * THREADS
    )
    for row in errors:
        log = sql_log(row)
        assert log["session_id"] in session_ids
        assert log["sql_statement_id"]  # each error is its statement's one log
        assert log["error_info"]["stack_trace"]
    integrity_ids = {r["sql_statement_id"] for r in errors if r["error_name"] == "IntegrityError"}
    assert integrity_ids == {
        st.sid for s in sessions for st in s.statements if st.error_name == "IntegrityError"
    }
    assert len(rows) == THREADS * 9


def test_no_sql_text_or_parameter_value_reaches_the_endpoint(
    endpoint: LocalEndpoint, telemetry_db: Any
) -> None:
    run_threads(telemetry_db)
    assert actors.flush(5.0)
    rows = stored(endpoint)
    assert rows
    for row in rows:
        raw = row["raw_json"]
        for literal in (SQL_LITERAL, PARAM_PREFIX, "SELECT", "INSERT INTO", "CREATE TABLE"):
            assert literal not in raw, (literal, raw)
        # Table names appear only where the driver's own error message names them.
        if TABLE in raw or MISSING_TABLE in raw:
            assert row["kind"] == "error"
            trace = sql_log(row)["error_info"]["stack_trace"]
            assert TABLE in trace or MISSING_TABLE in trace


def test_accounts_balance_after_flush_and_after_shutdown(
    endpoint: LocalEndpoint, telemetry_db: Any, harness: Harness
) -> None:
    sessions = run_threads(telemetry_db)
    # Told per session: opened and closed, one summary per statement, nothing else.
    told = sum(2 + len(s.statements) for s in sessions)
    assert actors.flush(5.0)
    account = harness.settled(endpoint.host_port, told)
    assert account["exported"] == told
    assert account["dropped"] == {}
    assert endpoint.store.count() == THREADS * 9

    assert actors.shutdown(5.0)
    final = actors.dump_state()["hosts"][endpoint.host_port]["accounting"]
    assert final["balanced"] and final["pending"] == 0
    assert final["exported"] == told


def test_a_failed_connect_is_stored_as_an_error_log(
    endpoint: LocalEndpoint, telemetry_db: Any, tmp_path: Any
) -> None:
    missing = tmp_path / "no" / "such" / "dir.db"
    with pytest.raises(sqlite3.OperationalError):
        telemetry_db.connect(f"file:{missing}?mode=ro", uri=True)
    assert actors.flush(5.0)
    errors = by_kind(stored(endpoint), "error")
    assert [row["error_name"] for row in errors] == ["OperationalError"]
    assert errors[0]["sql_statement_id"] is None
    assert errors[0]["session_id"]  # the session that never opened
    assert by_kind(stored(endpoint), "connection") == []


def test_telemetry_disabled_leaves_the_endpoint_untouched(
    endpoint: LocalEndpoint, token: str
) -> None:
    db = instrument(
        sqlite3,
        host=endpoint.url,
        auth=lambda: {"Authorization": f"Bearer {token}"},
        properties={"telemetry.enabled": "false"},
    )
    assert db.connect is sqlite3.connect  # off in configuration: the driver's own objects

    def work() -> None:
        conn = db.connect(":memory:")
        try:
            assert conn.execute("SELECT 1").fetchall() == [(1,)]
        finally:
            conn.close()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    assert actors.flush(2.0)
    assert endpoint.store.count() == 0
    assert endpoint.stats()["flag_fetches"] == 0
