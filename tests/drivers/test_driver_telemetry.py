"""What each driver's instrumentation tells, read from a recording in place of the telemetry
connection: driver types kept where the driver has hooks, every statement path a log, the
session's end however the connection closes."""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from servers import require_module

from actors.dbapi import InstrumentedConnection, InstrumentedCursor, driver_info_of
from messages.enums import OperationType, StatementType
from messages.events import (
    ChunkDownloaded,
    ConnectionClosed,
    ConnectionOpened,
    ErrorOccurred,
    StatementCompleted,
    StatementStarted,
)

from .checks import people
from .conftest import DRIVERS, OpenConnections, Pair, Recording

PairOf = Callable[[str], Pair]
BIG = 2500


def statements(recording: Recording) -> list[dict[str, Any]]:
    """Each statement told, in order: its kinds, chunk indices and how it ended."""
    found: dict[str, dict[str, Any]] = {}
    for event in recording.events:
        match event:
            case StatementStarted(statement_id=sid):
                found[sid] = {
                    "type": event.statement_type,
                    "op": event.operation_type,
                    "chunks": [],
                    "end": None,
                }
            case ChunkDownloaded(statement_id=sid):
                found[sid]["chunks"].append(event.chunk_index)
            case StatementCompleted(statement_id=sid):
                found[sid]["end"] = ("completed", event.total_chunks_present)
            case ErrorOccurred(statement_id=sid) if sid in found:
                found[sid]["end"] = ("error", event.error_name)
    return list(found.values())


def last_recording(pair: Pair) -> Recording:
    return pair.recordings[-1]


# --- type identity --------------------------------------------------------------------------


def test_psycopg2_objects_stay_psycopg2_types_and_its_helpers_accept_them(
    pair_of: PairOf,
) -> None:
    pair = pair_of("psycopg2")
    extensions = require_module("psycopg2.extensions", "psycopg2-binary")
    extras = require_module("psycopg2.extras", "psycopg2-binary")
    sql = require_module("psycopg2.sql", "psycopg2-binary")
    conn = pair.wrapped.connect(pair.db)
    try:
        assert isinstance(conn, extensions.connection)
        cur = conn.cursor()
        assert isinstance(cur, extensions.cursor)
        assert cur.connection is conn
        extras.register_uuid(conn_or_curs=conn)
        extensions.register_type(extensions.UNICODE, conn)
        extensions.register_type(extensions.UNICODE, cur)
        assert extensions.quote_ident("a b", conn) == '"a b"'
        query = sql.SQL("SELECT {}").format(sql.Identifier("x"))
        assert query.as_string(conn) == 'SELECT "x"'
        assert query.as_string(cur) == 'SELECT "x"'
        dict_cur = conn.cursor(cursor_factory=extras.RealDictCursor)
        assert isinstance(dict_cur, extras.RealDictCursor)
        dict_cur.execute("SELECT 1 AS one")
        assert dict_cur.fetchall() == [{"one": 1}]
        logging_conn = pair.wrapped.connect(pair.db, connection_factory=extras.LoggingConnection)
        assert isinstance(logging_conn, extras.LoggingConnection)
        logging_conn.close()
    finally:
        conn.close()
    kinds = [s["type"] for s in statements(pair.recordings[0])]
    assert kinds == [StatementType.QUERY]


def test_psycopg_objects_stay_psycopg_types_and_typeinfo_fetch_accepts_them(
    pair_of: PairOf,
) -> None:
    pair = pair_of("psycopg")
    psycopg = pair.module
    types = require_module("psycopg.types", "psycopg[binary]")
    conn = pair.wrapped.connect(pair.db)
    try:
        assert isinstance(conn, psycopg.Connection)
        info = types.TypeInfo.fetch(conn, "int4")
        assert info is not None and info.oid == 23
        cur = conn.cursor()
        assert isinstance(cur, psycopg.Cursor) and cur.connection is conn
        named = conn.cursor("named")
        assert isinstance(named, psycopg.ServerCursor)
        named.close()
        conn.cursor_factory = psycopg.ClientCursor
        client = conn.cursor()
        assert isinstance(client, psycopg.ClientCursor)
        client.execute("SELECT 1")
        assert client.fetchall() == [(1,)]
    finally:
        conn.close()
    assert [s["type"] for s in statements(pair.recordings[0])][-1] is StatementType.QUERY


@pytest.mark.parametrize("name", ["sqlite3", "pyodbc"])
def test_drivers_without_class_hooks_keep_the_generic_wrapper(pair_of: PairOf, name: str) -> None:
    pair = pair_of(name)
    conn = pair.wrapped.connect(pair.db)
    try:
        assert isinstance(conn, InstrumentedConnection)
        assert isinstance(conn.cursor(), InstrumentedCursor)
        assert isinstance(conn.execute("SELECT 1"), InstrumentedCursor)
    finally:
        conn.close()


def test_psycopg2_factory_classes_keep_their_own_behaviour_and_are_told_once(
    pair_of: PairOf,
) -> None:
    pair = pair_of("psycopg2")
    extras = require_module("psycopg2.extras", "psycopg2-binary")
    conn = pair.wrapped.connect(pair.db, connection_factory=extras.DictConnection)
    try:
        assert isinstance(conn, extras.DictConnection)
        cur = conn.cursor()  # DictConnection's own default: a DictCursor
        assert isinstance(cur, extras.DictCursor)
        cur.execute("SELECT 1 AS one UNION ALL SELECT 2")
        assert [row["one"] for row in cur] == [1, 2]
        real = conn.cursor(cursor_factory=extras.RealDictCursor)
        real.execute("SELECT 3 AS three")
        assert real.fetchall() == [{"three": 3}]
        named = conn.cursor("dict_scan")
        assert isinstance(named, extras.DictCursor)
        named.execute("SELECT generate_series(1, 5) AS n")
        assert [row["n"] for row in named.fetchmany(10)] == [1, 2, 3, 4, 5]
    finally:
        conn.close()
    told = [(s["type"], s["chunks"], s["end"]) for s in statements(pair.recordings[0])]
    assert told == [
        (StatementType.QUERY, [0], ("completed", 1)),
        (StatementType.QUERY, [0], ("completed", 1)),
        (StatementType.QUERY, [0], ("completed", 1)),
    ]


# --- connection-level shortcuts -------------------------------------------------------------


@pytest.mark.parametrize("name", ["sqlite3", "pyodbc", "psycopg"])
def test_a_connection_shortcut_is_the_drivers_own_and_told_as_one_statement(
    pair_of: PairOf, name: str
) -> None:
    pair = pair_of(name)
    conn = people(pair.db, pair.wrapped)
    recording = last_recording(pair)
    before = len(statements(recording))
    try:
        cur = conn.execute(pair.wrapped.sql("SELECT id FROM people WHERE id < ? ORDER BY id"), (3,))
        assert cur.connection is conn
        assert [tuple(row) for row in cur.fetchall()] == [(0,), (1,), (2,)]
        conn.execute(pair.wrapped.sql("DELETE FROM people WHERE id = ?"), (1,))
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM people").fetchone()[0] == 10
    finally:
        conn.close()
    told = statements(recording)[before:]
    assert [(s["type"], s["chunks"], s["end"]) for s in told] == [
        (StatementType.QUERY, [0], ("completed", 1)),
        (StatementType.UPDATE, [], ("completed", 0)),
        (StatementType.QUERY, [0], ("completed", None)),
    ]


class _SelfReturningConnection:
    """A driver beyond the matrix: ``execute`` runs on the connection and returns it."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.open = True

    def execute(self, operation: str) -> _SelfReturningConnection:
        self.ran.append(operation)
        return self

    def fetchall(self) -> list[tuple[int]]:
        return [(len(self.ran),)]

    def close(self) -> None:
        self.open = False

    def __enter__(self) -> _SelfReturningConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def test_a_shortcut_that_returns_the_connection_returns_the_instrumented_one(
    recordings: list[Recording],
) -> None:
    import types as module_types

    from actors.dbapi import instrument

    driver = module_types.ModuleType("selfdriver")
    driver.connect = _SelfReturningConnection  # type: ignore[attr-defined]
    db = instrument(driver, host="drivers.example.com")
    with db.connect() as conn:
        assert conn.execute("UPDATE t SET a = 1") is conn
        assert conn.fetchall() == [(1,)]
    (recording,) = recordings
    assert [type(e) for e in recording.events] == [
        ConnectionOpened,
        StatementStarted,
        StatementCompleted,
        ConnectionClosed,  # its `with` closed it, and it says so with ``open``
    ]


# --- the end of the session -----------------------------------------------------------------


def _ends(recording: Recording) -> int:
    return len(recording.of(ConnectionClosed))


@pytest.mark.parametrize("name", DRIVERS)
def test_the_session_ends_at_close_and_only_once(pair_of: PairOf, name: str) -> None:
    pair = pair_of(name)
    conn = pair.wrapped.connect(pair.db)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    conn.close()
    try:
        conn.close()  # the driver's own answer: pyodbc raises, the others do nothing
    except pair.module.Error:
        assert name == "pyodbc"
    recording = last_recording(pair)
    assert _ends(recording) == 1 and recording.closed
    assert isinstance(recording.events[-1], ConnectionClosed)


@pytest.mark.parametrize("name", DRIVERS)
def test_the_session_ends_when_a_with_block_closes_the_connection_and_not_before(
    pair_of: PairOf, name: str
) -> None:
    pair = pair_of(name)
    with pair.wrapped.connect(pair.db) as conn:
        conn.cursor().execute("SELECT 1")
    recording = last_recording(pair)
    raw = pair.raw.connect(pair.module)
    with raw:
        pass
    driver_closes = bool(getattr(raw, "closed", False))
    raw.close()
    assert _ends(recording) == (1 if driver_closes else 0)
    assert driver_closes is (name == "psycopg")
    conn.close()
    assert _ends(recording) == 1


@pytest.mark.parametrize("name", DRIVERS)
def test_the_session_ends_when_a_never_closed_connection_is_collected(
    pair_of: PairOf, name: str
) -> None:
    pair = pair_of(name)
    conn = pair.wrapped.connect(pair.db)
    conn.cursor().execute("SELECT 1")
    recording = last_recording(pair)
    assert _ends(recording) == 0
    with warnings.catch_warnings():  # psycopg's own warning about a connection left open
        warnings.simplefilter("ignore", ResourceWarning)
        del conn
        gc.collect()
    assert _ends(recording) == 1 and recording.closed


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
        (StatementType.SQL, [0], ("completed", 1)),
        (StatementType.SQL, [], ("error", "UndefinedFunction")),
        (StatementType.UPDATE, [], ("completed", 0)),
        (StatementType.QUERY, [], ("completed", 0)),
        (StatementType.UPDATE, [], ("completed", 0)),
        (StatementType.QUERY, [], ("completed", 0)),
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
        (StatementType.QUERY, [], ("completed", 0)),
        (StatementType.QUERY, [0, 1, 2], ("completed", 3)),
        (StatementType.UPDATE, [], ("error", "UndefinedTable")),
        (StatementType.QUERY, [0], ("completed", None)),
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
    finally:
        conn.close()
    told = [(s["type"], s["op"], len(s["chunks"])) for s in statements(recording)[before:]]
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
        (StatementType.QUERY, [0], ("completed", 1)),
        (StatementType.QUERY, [0, 1], ("completed", None)),
        (StatementType.QUERY, [], ("completed", 0)),
    ]


@pytest.mark.parametrize("wrapped", ["instrumented", "wrapped_once_open"])
@pytest.mark.parametrize("name", ["psycopg", "psycopg2"])
def test_a_named_cursors_fetches_are_chunks_when_they_happen(
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
        (after_execute,) = statements(recording)[before:]
        assert after_execute["end"] is None  # still open: the rows are on the server
        assert sum(1 for _ in cur) == BIG
        cur.close()
    finally:
        conn.close()
    (told,) = statements(recording)[before:]
    assert (told["type"], told["chunks"], told["end"]) == (
        StatementType.QUERY,
        [0, 1, 2],
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


def test_instrumenting_and_statement_typing_import_no_driver() -> None:
    script = (
        "import sqlite3, sys\n"
        "from actors.dbapi import instrument, statement_type_of\n"
        "for operation in (object(), b'SELECT 1', 'SELECT 1', bytearray(b'x')):\n"
        "    statement_type_of(operation)\n"
        "off = {'telemetry.enabled': 'false'}  # no network: only what gets imported matters\n"
        "instrument(sqlite3, host='127.0.0.1', properties=off).connect(':memory:').close()\n"
        "names = ('psycopg', 'psycopg2', 'psycopg.sql', 'psycopg2.sql', 'pyodbc')\n"
        "print([name for name in names if name in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "distribution"),
    [("pyodbc", "pyodbc"), ("psycopg", "psycopg"), ("psycopg2", "psycopg2-binary")],
)
def test_the_driver_version_is_the_installed_distributions(name: str, distribution: str) -> None:
    import importlib.metadata

    module = require_module(name, distribution)
    assert driver_info_of(module).version == importlib.metadata.version(distribution)
    assert driver_info_of(module).name == name


# --- the very exception object --------------------------------------------------------------


def _first_raised_and_caught(action: Callable[[], Any]) -> tuple[BaseException, BaseException]:
    """The first exception object of the caught class seen in any Python frame while `action`
    ran (the driver's own, whether raised in Python code or by a C call), and the one that
    reached the caller."""
    seen: list[BaseException] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "exception":
            seen.append(arg[1])
        return tracer

    sys.settrace(tracer)
    try:
        action()
    except Exception as exc:
        caught: BaseException = exc
    else:
        pytest.fail("the statement did not fail")
    finally:
        sys.settrace(None)
    return next(exc for exc in seen if type(exc) is type(caught)), caught


@pytest.mark.parametrize("name", DRIVERS)
def test_a_failing_statement_raises_the_very_object_the_driver_raised(
    pair_of: PairOf, name: str
) -> None:
    pair = pair_of(name)
    conn = people(pair.db, pair.wrapped)
    try:
        cur = conn.cursor()
        duplicate = pair.wrapped.sql("INSERT INTO people (id, name) VALUES (?, ?)")
        for action in (
            lambda: cur.execute("SELEC 1"),
            lambda: cur.execute(duplicate, (1, "again")),
            lambda: cur.executemany(duplicate, [(2, "again")]),
        ):
            raised, caught = _first_raised_and_caught(action)
            assert caught is raised
            assert caught.__cause__ is None
            conn.rollback()
    finally:
        conn.close()
    assert len(last_recording(pair).of(ErrorOccurred)) == 3


@pytest.mark.parametrize("factory", [42, "not a class", lambda *args: None])
def test_a_cursor_factory_that_is_not_a_class_is_refused_by_the_driver_as_without_us(
    pair_of: PairOf, factory: Any
) -> None:
    pair = pair_of("psycopg2")
    answers = []
    for db, env in ((pair.module, pair.raw), (pair.db, pair.wrapped)):
        conn = env.connect(db)
        try:
            conn.cursor(cursor_factory=factory)
        except Exception as exc:
            answers.append((type(exc), str(exc)))
        else:
            answers.append(None)
        finally:
            conn.close()
    assert answers[0] == answers[1]
