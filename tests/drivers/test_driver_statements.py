"""Every statement path of each driver is a log (read from a recording): callproc, copies,
streams, catalog functions, each result set, server-side cursors, typed from any query form."""

from __future__ import annotations

import io

import pytest
from servers import require_module

from messages.enums import OperationType, StatementType

from .checks import people
from .conftest import (
    BIG,
    OpenConnections,
    PairOf,
    last_recording,
    statements,
)

# --- every statement path is a log ----------------------------------------------------------


def test_psycopg2_callproc_copies_and_a_failing_callproc_are_logs(pair_of: PairOf) -> None:
    pair = pair_of("psycopg2")
    conn = pair.wrapped.connect(pair.db)
    try:
        cur = conn.cursor()
        cur.execute(
            "CREATE FUNCTION twice(x integer) RETURNS integer AS 'SELECT 2 * x' LANGUAGE sql"
        )
        cur.execute("CREATE TABLE items (id INTEGER, label TEXT)")
        conn.commit()
        cur.callproc("twice", (4,))
        assert cur.fetchall() == [(8,)]
        with pytest.raises(pair.module.errors.UndefinedFunction):
            cur.callproc("missing_q3", (1,))
        conn.rollback()
        cur.copy_from(io.StringIO("1\tone\n2\ttwo\n"), "items")
        cur.copy_to(io.StringIO(), "items")
        cur.copy_expert("COPY items FROM STDIN", io.StringIO("3\tthree\n"))
        cur.copy_expert("COPY items TO STDOUT", io.StringIO())
    finally:
        conn.close()
    told = [(s["type"], s["chunks"], s["end"]) for s in statements(pair.recordings[0])][2:]
    assert told == [
        (StatementType.SQL, 1, ("completed", 1)),
        (StatementType.SQL, 0, ("error", "UndefinedFunction")),
        (StatementType.UPDATE, 0, ("completed", 0)),
        (StatementType.QUERY, 0, ("completed", 0)),
        (StatementType.UPDATE, 0, ("completed", 0)),
        (StatementType.QUERY, 0, ("completed", 0)),
    ]


def test_psycopg_copy_and_stream_are_logs_with_the_streams_rows_as_chunks(
    pair_of: PairOf,
) -> None:
    pair = pair_of("psycopg")
    conn = people(pair.db, pair.wrapped, count=BIG)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        cur = conn.cursor()
        with cur.copy("COPY people (id, name) TO STDOUT") as copy:
            assert sum(len(bytes(block)) for block in copy) > 0
        assert sum(1 for _ in cur.stream("SELECT id FROM people")) == BIG
        with (
            pytest.raises(pair.module.errors.UndefinedTable),
            cur.copy("COPY missing_q4 FROM STDIN"),
        ):
            pass
        conn.rollback()
        rows = cur.stream("SELECT id FROM people")
        next(rows)
        rows.close()  # a stream abandoned: its log ends, not exhausted
    finally:
        conn.close()
    told = [(s["type"], s["chunks"], s["end"]) for s in statements(recording)[before:]]
    assert told == [
        (StatementType.QUERY, 0, ("completed", 0)),
        (StatementType.QUERY, 3, ("completed", 3)),
        (StatementType.UPDATE, 0, ("error", "UndefinedTable")),
        (StatementType.QUERY, 1, ("completed", None)),
    ]


def test_pyodbc_catalog_functions_are_metadata_logs_with_list_operation_types(
    pair_of: PairOf,
) -> None:
    pair = pair_of("pyodbc")
    conn = people(pair.db, pair.wrapped)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        cur = conn.cursor()
        cur.execute("SELECT id FROM people")
        assert len(cur.fetchall()) == 10
        cur.tables(table="people").fetchall()
        cur.columns(table="people").fetchall()
        cur.primaryKeys("people").fetchall()
        cur.getTypeInfo().fetchall()
        cur.statistics("people").fetchall()
        cur.execute("CREATE TABLE pets (id INTEGER PRIMARY KEY, owner INTEGER REFERENCES people)")
        for arguments in ({"table": "people"}, {"foreignTable": "pets"}):
            cur.foreignKeys(**arguments).fetchall()
        cur.foreignKeys("people", None, None, "pets").fetchall()
    finally:
        conn.close()
    told = [(s["type"], s["op"], s["chunks"]) for s in statements(recording)[before:]]
    keys = told[6:]
    assert [op for _, op, _ in keys] == [
        OperationType.EXECUTE_STATEMENT,
        OperationType.LIST_EXPORTED_KEYS,
        OperationType.LIST_IMPORTED_KEYS,
        OperationType.LIST_CROSS_REFERENCES,
    ]
    told = told[:6]
    meta = StatementType.METADATA
    assert told == [
        (StatementType.QUERY, OperationType.EXECUTE_STATEMENT, 1),
        (meta, OperationType.LIST_TABLES, 1),
        (meta, OperationType.LIST_COLUMNS, 1),
        (meta, OperationType.LIST_PRIMARY_KEYS, 1),
        (meta, OperationType.LIST_TYPE_INFO, 1),
        (meta, OperationType.LIST_COLUMNS, 1),
    ]


def test_each_result_set_nextset_moves_to_is_its_own_log(pair_of: PairOf) -> None:
    pair = pair_of("psycopg")
    conn = people(pair.db, pair.wrapped)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT id FROM people; SELECT name FROM people WHERE id < 3; DELETE FROM people"
        )
        assert len(cur.fetchall()) == 10
        assert cur.nextset()
        cur.fetchmany(1)
        cur.fetchmany(1)
        assert cur.nextset()
        assert cur.nextset() is None
    finally:
        conn.close()
    told = [(s["type"], s["chunks"], s["end"]) for s in statements(recording)[before:]]
    assert told == [
        (StatementType.QUERY, 1, ("completed", 1)),
        (StatementType.QUERY, 2, ("completed", None)),
        (StatementType.QUERY, 0, ("completed", 0)),
    ]


@pytest.mark.parametrize("wrapped", ["instrumented", "wrapped_once_open"])
@pytest.mark.parametrize("name", ["psycopg", "psycopg2"])
def test_a_named_cursors_statement_stays_open_until_its_rows_are_fetched(
    pair_of: PairOf, name: str, wrapped: str
) -> None:
    pair = pair_of(name)
    db = pair.db if wrapped == "instrumented" else OpenConnections(pair.module)
    conn = people(db, pair.wrapped, count=BIG)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        cur = conn.cursor("scan")
        cur.execute("SELECT id, name FROM people ORDER BY id")
        assert statements(recording)[before:] == []  # still open: the rows are on the server
        assert sum(1 for _ in cur) == BIG
        cur.close()
    finally:
        conn.close()
    (told,) = statements(recording)[before:]
    assert (told["type"], told["chunks"], told["end"]) == (
        StatementType.QUERY,
        3,
        ("completed", 3),
    )


@pytest.mark.parametrize("name", ["psycopg", "psycopg2"])
def test_statement_types_come_from_bytes_and_composed_queries(pair_of: PairOf, name: str) -> None:
    pair = pair_of(name)
    sql = require_module(f"{name}.sql", name)
    conn = people(pair.db, pair.wrapped)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        cur = conn.cursor()
        cur.execute(b"SELECT id FROM people")
        cur.execute(
            sql.SQL("INSERT INTO {} (id, name) VALUES (100, 'x')").format(sql.Identifier("people"))
        )
        cur.execute(sql.SQL("SELECT {} FROM people").format(sql.Identifier("name")))
        cur.execute(sql.Composed([sql.SQL("  DELETE FROM "), sql.Identifier("people")]))
    finally:
        conn.close()
    told = [s["type"] for s in statements(recording)[before:]]
    assert told == [
        StatementType.QUERY,
        StatementType.UPDATE,
        StatementType.QUERY,
        StatementType.UPDATE,
    ]


def test_pyodbc_fetchval_counts_a_row_when_it_returns_a_value(pair_of: PairOf) -> None:
    pair = pair_of("pyodbc")
    conn = people(pair.db, pair.wrapped)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        assert conn.execute("SELECT count(*) FROM people").fetchval() == 10
        assert conn.execute("SELECT name FROM people WHERE id = -1").fetchval() is None
        assert not hasattr(conn.cursor(), "no_such_method")
    finally:
        conn.close()
    told = [(s["type"], s["chunks"], s["end"]) for s in statements(recording)[before:]]
    assert told == [
        (StatementType.QUERY, 1, ("completed", None)),
        (StatementType.QUERY, 0, ("completed", None)),
    ]
