"""Each driver's instrumented workload told through the whole pipeline to a real local endpoint:
the stored logs are what the workload did (one per statement, result set and catalog call, chunk
details matching the fetches, the failing statement's error, the session's close), with the
driver's distribution version and no SQL text or parameter value outside driver error text."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import actors
from actors.dbapi import driver_info_of, instrument
from actors.tools.local_endpoint import LocalEndpoint

from .checks import MARKER, people
from .conftest import DRIVERS, Env

TOKEN = "drivers-token"
ROWS = 2500
SETTINGS = actors.TelemetrySettings(flush_interval_ms=50, retry_delay_ms=10, breaker_open_s=1)
WAIT_S = 10.0


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def endpoint(wait_until: Callable[..., Any]) -> Iterator[LocalEndpoint]:
    """A local endpoint, and a keeper telemetry connection holding its host's tree (so `flush()`
    has a tree to synchronise with) once the feature flag is known."""
    with LocalEndpoint(host="127.0.0.1", port=0, token=TOKEN, stop_timeout_s=2.0) as served:
        keeper = actors.connect(
            served.url, driver=actors.DriverInfo(name="keeper", version="0"), auth=auth,
            settings=SETTINGS,
        )  # fmt: skip

        def flag_on() -> bool:
            hosts = actors.dump_state(2.0)["hosts"]
            return hosts.get(served.host_port, {}).get("aggregator", {}).get("flag") == "on"

        wait_until(flag_on, WAIT_S, "the feature flag")
        yield served
        keeper.close()


def workload(db: Any, env: Env) -> list[tuple[str, str, int | None, int | None]]:
    """Run the shared workload plus the driver's own paths; return the expected statement logs
    as (statement type, operation type, chunks iterated, chunks present) in order."""
    conn = people(db, env, count=ROWS)  # CREATE, executemany
    expected: list[tuple[str, str, int | None, int | None]] = [
        ("SQL", "EXECUTE_STATEMENT", None, None),
        ("UPDATE", "EXECUTE_STATEMENT", None, None),
    ]
    cur = conn.cursor()
    cur.execute(env.sql("SELECT id, name FROM people WHERE name <> ? ORDER BY id"), (MARKER,))
    assert len(cur.fetchall()) == ROWS
    expected.append(("QUERY", "EXECUTE_STATEMENT", 1, 1))
    cur.execute("SELECT id FROM people")
    assert sum(1 for _ in cur) == ROWS
    expected.append(("QUERY", "EXECUTE_STATEMENT", 3, 3))
    with pytest.raises(env.module.Error):
        cur.execute(f"SELEC '{MARKER}'")
    conn.rollback()
    if env.name == "pyodbc":
        assert cur.tables(table="people").fetchall()
        expected.append(("METADATA", "LIST_TABLES", 1, 1))
    if env.name in ("psycopg", "psycopg2"):
        named = conn.cursor("scan")
        named.execute("SELECT id FROM people")
        assert sum(1 for _ in named) == ROWS
        named.close()
        expected.append(("QUERY", "EXECUTE_STATEMENT", 3, 3))
    if env.name == "psycopg":
        cur.execute("SELECT 1; SELECT 2")
        cur.fetchall()
        cur.nextset()
        cur.fetchall()
        expected += [("QUERY", "EXECUTE_STATEMENT", 1, 1)] * 2
    conn.close()
    return expected


def sql_log(row: dict[str, Any]) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(row["raw_json"])["entry"]["sql_driver_log"]
    return log


@pytest.mark.parametrize("name", DRIVERS)
def test_a_drivers_workload_is_stored_as_the_logs_it_should_be(
    name: str, env_of: Callable[[str], Env], endpoint: LocalEndpoint, wait_until: Any
) -> None:
    env = env_of(name)
    db = instrument(env.module, host=endpoint.url, auth=auth, settings=SETTINGS)
    expected = workload(db, env)
    total = len(expected) + 3  # the connection, the error and the close
    assert actors.flush(WAIT_S)
    wait_until(lambda: endpoint.store.count() >= total, WAIT_S, f"{total} logs")
    rows = endpoint.store.rows(limit=1000)
    assert len(rows) == total
    kinds = [row["kind"] for row in rows]
    assert kinds.count("connection") == kinds.count("close") == kinds.count("error") == 1

    (connection,) = [sql_log(r) for r in rows if r["kind"] == "connection"]
    system = connection["system_configuration"]
    assert (system["driver_name"], system["driver_version"]) == (
        name,
        driver_info_of(env.module).version,
    )
    stored = [sql_log(r)["sql_operation"] for r in rows if r["kind"] == "statement"]
    told = [
        (
            operation["statement_type"],
            operation["operation_detail"]["operation_type"],
            operation.get("chunk_details", {}).get("total_chunks_iterated"),
            operation.get("chunk_details", {}).get("total_chunks_present"),
        )
        for operation in stored
    ]
    assert sorted(told, key=repr) == sorted(expected, key=repr)
    (error,) = [r for r in rows if r["kind"] == "error"]
    assert error["sql_statement_id"]
    for row in rows:
        if row["kind"] != "error":
            assert MARKER not in row["raw_json"]
            assert "SELECT" not in row["raw_json"]
