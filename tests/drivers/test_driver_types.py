"""Driver types kept where the driver has class hooks (psycopg 3, psycopg2), the generic wrapper
elsewhere, and connection-level shortcuts as the driver's own (telemetry read from a recording)."""

from __future__ import annotations

import types as module_types
from typing import Any

import pytest
from servers import require_module

from actors.dbapi import (
    InstrumentedConnection,
    InstrumentedCursor,
    instrument,
)
from messages.enums import StatementType
from messages.events import (
    ConnectionClosed,
    ConnectionOpened,
    StatementSummary,
)

from .checks import people
from .conftest import (
    PairOf,
    Recording,
    last_recording,
    statements,
)

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
        (StatementType.QUERY, 1, ("completed", 1)),
        (StatementType.QUERY, 1, ("completed", 1)),
        (StatementType.QUERY, 1, ("completed", 1)),
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
        (StatementType.QUERY, 1, ("completed", 1)),
        (StatementType.UPDATE, 0, ("completed", 0)),
        (StatementType.QUERY, 1, ("completed", None)),
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

    driver = module_types.ModuleType("selfdriver")
    driver.connect = _SelfReturningConnection  # type: ignore[attr-defined]
    db = instrument(driver, host="drivers.example.com")
    with db.connect() as conn:
        assert conn.execute("UPDATE t SET a = 1") is conn
        assert conn.fetchall() == [(1,)]
    (recording,) = recordings
    assert [type(e) for e in recording.events] == [
        ConnectionOpened,
        StatementSummary,
        ConnectionClosed,  # its `with` closed it, and it says so with ``open``
    ]


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
