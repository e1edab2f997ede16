"""An instrumented sqlite3 behaves exactly like sqlite3, and tells the events it should.

The equivalence checks run the same function against the raw driver and the instrumented one
(telemetry on, with a real local endpoint, and telemetry off) and compare what came out: values,
or exception type and message. The event tests put a recorder in place of the telemetry
connection and read the exact events told.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

import actors
import actors.dbapi._session as dbapi_session
from actors.dbapi import (
    ROWS_PER_CHUNK,
    InstrumentedConnection,
    InstrumentedCursor,
    driver_info_of,
    instrument,
    instrument_connection,
    statement_type_of,
)
from actors.tools.local_endpoint import LocalEndpoint
from messages.config import TelemetrySettings
from messages.enums import StatementType
from messages.events import (
    ConnectionClosed,
    ConnectionOpened,
    ErrorOccurred,
    StatementSummary,
)
from messages.sysconfig import DriverInfo

TOKEN = "unit-token"
STOP_TIMEOUT_S = 2.0
FAST = {"flush_interval_ms": 50, "retry_delay_ms": 10, "breaker_open_s": 1}


@pytest.fixture(autouse=True)
def no_actor_left_behind() -> Iterator[None]:
    yield
    actors.shutdown(STOP_TIMEOUT_S)
    pykka.ActorRegistry.stop_all(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(token=TOKEN, stop_timeout_s=STOP_TIMEOUT_S) as served:
        yield served


@pytest.fixture(params=["telemetry_to_local_endpoint", "telemetry_disabled"])
def instrumented(request: pytest.FixtureRequest, endpoint: LocalEndpoint) -> Any:
    enabled = request.param == "telemetry_to_local_endpoint"
    return instrument(
        sqlite3,
        host=endpoint.url,
        auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
        settings=TelemetrySettings(enabled=enabled, **FAST),
    )


Outcome = tuple[Any, ...]


def outcome(check: Callable[[Any, Path], Any], db: Any, path: Path) -> Outcome:
    """What a check produced: its value, or the type and message of what it raised."""
    try:
        return ("returned", check(db, path))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def assert_same(check: Callable[[Any, Path], Any], instrumented: Any, tmp_path: Path) -> Outcome:
    expected = outcome(check, sqlite3, tmp_path / "raw.db")
    actual = outcome(check, instrumented, tmp_path / "instrumented.db")
    assert actual == expected
    return actual


def people(db: Any, path: Path | str = ":memory:") -> Any:
    conn = db.connect(str(path))
    conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE, age INT)")
    conn.executemany(
        "INSERT INTO people (name, age) VALUES (?, ?)",
        [(f"person-{i}", 20 + i) for i in range(10)],
    )
    conn.commit()
    return conn


# --- the checks -------------------------------------------------------------------------------


def check_create_insert_select(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        cur.execute("INSERT INTO t VALUES (?, ?)", (1, "one"))
        cur.execute("INSERT INTO t VALUES (:a, :b)", {"a": 2, "b": "two"})
        returned_self = cur.execute("SELECT a, b FROM t ORDER BY a") is cur
        return returned_self, cur.fetchall(), conn.total_changes
    finally:
        conn.close()


def check_executemany_and_rowcount(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        cur = conn.cursor()
        cur.executemany("UPDATE people SET age = age + 1 WHERE name = ?", [("person-1",), ("x",)])
        many = cur.rowcount
        cur.execute("UPDATE people SET age = 0 WHERE age > 25")
        updated = cur.rowcount
        cur.execute("DELETE FROM people WHERE age = 0")
        deleted = cur.rowcount
        cur.execute("SELECT * FROM people")
        return many, updated, deleted, cur.rowcount, conn.in_transaction
    finally:
        conn.close()


def check_fetch_methods(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        cur = conn.execute("SELECT name FROM people ORDER BY id")
        first, second = cur.fetchone(), cur.fetchone()
        three = cur.fetchmany(3)
        cur.arraysize = 2
        default_size = cur.fetchmany()
        rest = cur.fetchall()
        after = (cur.fetchone(), cur.fetchmany(5), cur.fetchall())
        return first, second, three, cur.arraysize, default_size, rest, after
    finally:
        conn.close()


def check_iteration(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        cur = conn.execute("SELECT id FROM people ORDER BY id")
        taken = []
        for row in cur:
            taken.append(row)
            if len(taken) == 3:
                break
        by_next = next(cur)
        by_fetch = cur.fetchone()
        remaining = list(cur)
        exhausted = list(cur)
        listed = list(conn.execute("SELECT name FROM people WHERE id < 3"))
        return taken, by_next, by_fetch, remaining, exhausted, listed
    finally:
        conn.close()


def check_description(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        cur = conn.cursor()
        before = cur.description
        cur.execute("SELECT id, name AS who, age FROM people LIMIT 1")
        query = cur.description
        cur.execute("INSERT INTO people (name, age) VALUES ('new', 1)")
        return before, query, cur.description
    finally:
        conn.close()


def check_lastrowid(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        cur = conn.cursor()
        before = cur.lastrowid
        cur.execute("INSERT INTO people (name, age) VALUES ('eleven', 31)")
        inserted = cur.lastrowid
        cur.execute("SELECT 1")
        return before, inserted, cur.lastrowid, conn.execute("SELECT 2").lastrowid
    finally:
        conn.close()


def check_with_block_commits(db: Any, path: Path) -> Any:
    conn = db.connect(str(path))
    try:
        conn.execute("CREATE TABLE t (a)")
        with conn as entered:
            same = entered is conn
            conn.execute("INSERT INTO t VALUES (1)")
        conn.rollback()  # nothing left to roll back: the block committed
        other = db.connect(str(path))
        try:
            seen_elsewhere = other.execute("SELECT a FROM t").fetchall()
        finally:
            other.close()
        return same, conn.in_transaction, seen_elsewhere
    finally:
        conn.close()


def check_with_block_rolls_back_on_error(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (a)")
        try:
            with conn:
                conn.execute("INSERT INTO t VALUES (1)")
                raise KeyError("boom")
        except KeyError as exc:
            escaped = repr(exc)
        return escaped, conn.execute("SELECT COUNT(*) FROM t").fetchone()
    finally:
        conn.close()


def check_integrity_error(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        conn.execute("INSERT INTO people (name, age) VALUES ('person-1', 5)")
    finally:
        conn.close()


def check_integrity_error_in_executemany(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        conn.executemany("INSERT INTO people (name) VALUES (?)", [("a",), ("person-2",)])
    finally:
        conn.close()


def check_operational_error_no_such_table(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        conn.cursor().execute("SELECT * FROM missing_table")
    finally:
        conn.close()


def check_operational_error_syntax(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        conn.execute("SELEKT 1")
    finally:
        conn.close()


def check_error_raised_while_iterating(db: Any, path: Path) -> Any:
    conn = people(db)

    def fragile(value: int) -> int:
        if value > 25:
            raise ValueError("no")
        return value

    try:
        conn.create_function("fragile", 1, fragile)
        cur = conn.execute("SELECT fragile(age) FROM people ORDER BY id")
        rows = []
        try:
            for row in cur:
                rows.append(row)
        except sqlite3.OperationalError as exc:
            return rows, type(exc), str(exc)
        return rows
    finally:
        conn.close()


def check_wrong_number_of_bindings(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        conn.execute("SELECT ?, ?", (1,))
    finally:
        conn.close()


def check_cursor_reuse(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        cur = conn.cursor()
        cur.execute("SELECT id FROM people ORDER BY id")
        partial = cur.fetchmany(2)
        cur.execute("SELECT name FROM people WHERE id > 8 ORDER BY id")
        second = cur.fetchall()
        cur.execute("UPDATE people SET age = 1 WHERE id = 1")
        third = (cur.rowcount, cur.fetchall())
        cur.close()
        try:
            cur.execute("SELECT 1")
        except sqlite3.ProgrammingError as exc:
            closed_cursor = str(exc)
        return partial, second, third, closed_cursor
    finally:
        conn.close()


def check_row_factory_passthrough(db: Any, path: Path) -> Any:
    conn = people(db)
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT id, name FROM people WHERE id = 1").fetchone()
        cur = conn.cursor()
        cur.row_factory = lambda cursor, values: {"first": values[0]}
        by_cursor = cur.execute("SELECT name FROM people WHERE id = 2").fetchall()
        conn.text_factory = bytes
        as_bytes = conn.execute("SELECT name FROM people WHERE id = 3").fetchone()
        return (
            conn.row_factory is sqlite3.Row,
            type(row).__name__,
            row.keys(),
            tuple(row),
            row["name"],
            by_cursor,
            tuple(as_bytes),
        )
    finally:
        conn.close()


def check_closed_connection_programming_error(db: Any, path: Path) -> Any:
    conn = people(db)
    cur = conn.execute("SELECT id FROM people")
    conn.close()
    conn.close()  # closing twice is fine
    errors = []
    for action in (
        conn.cursor,
        lambda: conn.execute("SELECT 1"),
        conn.commit,
        cur.fetchall,
        lambda: cur.execute("SELECT 1"),
    ):
        try:
            action()
        except sqlite3.ProgrammingError as exc:
            errors.append((type(exc), str(exc)))
    return errors


def check_executescript(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        cur = conn.cursor()
        returned_self = (
            cur.executescript(
                "CREATE TABLE a (x); INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);"
            )
            is cur
        )
        via_connection = conn.executescript("INSERT INTO a VALUES (3);")
        return (
            returned_self,
            type(via_connection).__name__ in ("Cursor", "InstrumentedCursor"),
            conn.execute("SELECT SUM(x) FROM a").fetchone(),
        )
    finally:
        conn.close()


def check_cursor_attributes(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        cur = conn.cursor()
        cur.setinputsizes([1])
        cur.setoutputsize(10)
        return (
            cur.connection is conn,
            cur.arraysize,
            conn.isolation_level,
            hasattr(cur, "no_such_attribute"),
            callable(conn.create_function),
        )
    finally:
        conn.close()


def check_unknown_attribute_errors(db: Any, path: Path) -> Any:
    conn = db.connect(":memory:")
    try:
        conn.no_such_method()
    finally:
        conn.close()


def check_operations_of_the_wrong_type(db: Any, path: Path) -> Any:
    """The driver's own TypeError for what it cannot run, however odd (a 0-dim memoryview
    cannot even be sliced); never one of ours from reading the statement's type."""
    conn = db.connect(":memory:")
    outcomes = []
    try:
        for operation in (memoryview(b"x").cast("B", shape=[]), b"SELECT 1", 42, None):
            try:
                conn.cursor().execute(operation)
                outcomes.append("ran")
            except Exception as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    return outcomes


def check_module_attributes(db: Any, path: Path) -> Any:
    return db.paramstyle, db.apilevel, db.threadsafety, db.Error, db.IntegrityError, db.Row


CHECKS = [
    check_create_insert_select,
    check_executemany_and_rowcount,
    check_fetch_methods,
    check_iteration,
    check_description,
    check_lastrowid,
    check_with_block_commits,
    check_with_block_rolls_back_on_error,
    check_integrity_error,
    check_integrity_error_in_executemany,
    check_operational_error_no_such_table,
    check_operational_error_syntax,
    check_error_raised_while_iterating,
    check_wrong_number_of_bindings,
    check_cursor_reuse,
    check_row_factory_passthrough,
    check_closed_connection_programming_error,
    check_executescript,
    check_cursor_attributes,
    check_unknown_attribute_errors,
    check_operations_of_the_wrong_type,
    check_module_attributes,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
def test_instrumented_sqlite3_gives_the_same_results_and_exceptions_as_sqlite3(
    check: Callable[[Any, Path], Any], instrumented: Any, tmp_path: Path
) -> None:
    assert_same(check, instrumented, tmp_path)


def test_failing_checks_really_fail_with_the_drivers_own_exception_types(
    instrumented: Any, tmp_path: Path
) -> None:
    integrity = assert_same(check_integrity_error, instrumented, tmp_path)
    operational = assert_same(check_operational_error_no_such_table, instrumented, tmp_path)
    assert integrity[:2] == ("raised", sqlite3.IntegrityError)
    assert operational[:2] == ("raised", sqlite3.OperationalError)


def test_instrumented_objects_are_wrappers_around_the_drivers_objects(instrumented: Any) -> None:
    conn = instrumented.connect(":memory:")
    if instrumented.connect is sqlite3.connect:  # off in configuration: the driver's own
        assert type(conn) is sqlite3.Connection
        conn.close()
        return
    try:
        cur = conn.execute("SELECT 1")
        assert isinstance(conn, InstrumentedConnection)
        assert isinstance(cur, InstrumentedCursor)
        assert isinstance(conn.cursor(), InstrumentedCursor)
        with conn as entered:
            assert entered is conn
    finally:
        conn.close()


# --- the exact exception object -------------------------------------------------------------


class FakeError(Exception):
    """A driver exception."""


class FakeCursor:
    description = None
    rowcount = -1

    def __init__(self, error: Exception) -> None:
        self.error = error

    def execute(self, operation: str, parameters: Any = ()) -> None:
        raise_from_driver(self.error)


class FakeConnection:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.error)

    def close(self) -> None:
        pass


def raise_from_driver(error: Exception) -> None:
    raise error


def fake_driver(error: Exception, fail_connect: bool = False) -> types.ModuleType:
    module = types.ModuleType("fakedriver")
    module.__version__ = "9.9"  # type: ignore[attr-defined]

    def connect(*args: Any, **kwargs: Any) -> FakeConnection:
        if fail_connect:
            raise_from_driver(error)
        return FakeConnection(error)

    module.connect = connect  # type: ignore[attr-defined]
    return module


def test_the_original_exception_object_is_re_raised_with_its_traceback(
    recorders: list[Recorder],
) -> None:
    error = FakeError("statement failed")
    db = instrument(fake_driver(error), host="example.com")
    conn = db.connect()
    with pytest.raises(FakeError) as raised:
        conn.cursor().execute("SELECT 1")
    assert raised.value is error
    frames = [entry.name for entry in raised.traceback]
    assert frames[-1] == "raise_from_driver"
    assert "execute" in frames
    conn.close()


def test_a_failed_connect_re_raises_the_drivers_exception_object(
    recorders: list[Recorder],
) -> None:
    error = FakeError("cannot connect")
    db = instrument(fake_driver(error, fail_connect=True), host="example.com")
    with pytest.raises(FakeError) as raised:
        db.connect("somewhere")
    assert raised.value is error


# --- events told (a recorder in place of the telemetry connection) ---------------------------


class Recorder:
    """Stands in for `actors.Connection`: records what is told."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.closed = False
        self.enabled = True

    def tell(self, event: object) -> bool:
        self.events.append(event)
        return True

    def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]


@pytest.fixture
def recorders(monkeypatch: pytest.MonkeyPatch) -> list[Recorder]:
    opened: list[Recorder] = []

    def open_recorder(target: Any) -> Recorder:
        opened.append(Recorder())
        return opened[-1]

    monkeypatch.setattr(dbapi_session, "_open_telemetry", open_recorder)
    return opened


@pytest.fixture
def recorded(recorders: list[Recorder]) -> tuple[Any, Recorder]:
    conn = people(instrument(sqlite3, host="example.com"))
    recorder = recorders[0]
    recorder.events.clear()
    return conn, recorder


def test_connect_tells_connection_opened_with_its_latency_and_no_auth_type(
    recorders: list[Recorder],
) -> None:
    conn = instrument(sqlite3, host="example.com").connect(":memory:")
    (opened,) = recorders[0].events
    assert isinstance(opened, ConnectionOpened)
    assert opened.session_id == conn.telemetry_session_id
    assert opened.latency_ms is not None and opened.latency_ms >= 0
    assert opened.auth_type is None
    conn.close()


def test_close_tells_connection_closed_and_releases_the_telemetry_connection(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    conn.close()
    conn.close()
    assert recorder.kinds() == ["ConnectionClosed"]
    assert recorder.events[0].session_id == conn.telemetry_session_id
    assert recorder.closed


def test_a_statement_without_a_result_set_is_told_right_after_execute(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    cur = conn.execute("UPDATE people SET age = 1")
    (told,) = recorder.events
    assert isinstance(told, StatementSummary)
    assert told.statement_type is StatementType.UPDATE
    assert told.session_id == conn.telemetry_session_id
    assert told.statement_id == cur.telemetry_statement_id
    assert told.completed and told.error is None
    assert told.operation_latency_ms == told.result_ready_latency_ms
    assert told.consumption_latency_ms is None
    assert (told.chunks, told.total_chunks_present) == (0, 0)
    conn.close()


def test_fetches_are_folded_into_chunks_and_the_statement_is_told_when_exhausted(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    cur = conn.execute("SELECT id, name FROM people ORDER BY id")
    cur.fetchone()
    cur.fetchone()
    cur.fetchmany(3)
    assert recorder.events == []  # still open: nothing told while it is fetched
    cur.fetchall()
    (told,) = recorder.events
    assert isinstance(told, StatementSummary)
    assert (told.chunks, told.total_chunks_present) == (3, 3)
    # id is 8 bytes, "person-N" 8 characters: 16 bytes a row; chunks of 2, 3 and 5 rows.
    assert told.size_bytes == 10 * 16
    assert 0 <= told.first_chunk_latency_ms <= told.slowest_chunk_latency_ms
    assert told.slowest_chunk_latency_ms <= told.chunks_latency_ms
    assert told.consumption_latency_ms is not None
    cur.fetchall()  # after the end: nothing more to tell
    assert len(recorder.events) == 1
    conn.close()


def test_fetchmany_returning_fewer_rows_than_asked_ends_the_statement(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    cur = conn.execute("SELECT id FROM people")
    assert len(cur.fetchmany(8)) == 8
    assert recorder.events == []
    assert len(cur.fetchmany(8)) == 2
    (told,) = recorder.events
    assert (told.chunks, told.total_chunks_present, told.size_bytes) == (2, 2, 10 * 8)
    conn.close()


def test_iteration_folds_one_chunk_per_rows_per_chunk_rows(recorders: list[Recorder]) -> None:
    conn = instrument(sqlite3, host="example.com").connect(":memory:")
    recorder = recorders[0]
    total = 2 * ROWS_PER_CHUNK + 7
    numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    rows = list(conn.execute(numbers + "SELECT i FROM n", (total,)))
    assert len(rows) == total
    told = recorder.events[-1]
    assert isinstance(told, StatementSummary)
    assert (told.chunks, told.total_chunks_present, told.size_bytes) == (3, 3, 8 * total)
    conn.close()


def test_the_next_execute_ends_the_previous_statement_unexhausted(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    cur = conn.cursor()
    cur.execute("SELECT id FROM people")
    first = cur.telemetry_statement_id
    cur.fetchone()
    cur.execute("SELECT name FROM people")
    (previous,) = recorder.events
    assert previous.statement_id == first
    assert previous.completed and (previous.chunks, previous.total_chunks_present) == (1, None)
    assert cur.telemetry_statement_id != first
    cur.close()
    assert [e.statement_id for e in recorder.events] == [first, cur.telemetry_statement_id]
    conn.close()


def test_closing_the_connection_tells_open_statements_before_connection_closed(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    cur = conn.execute("SELECT id FROM people")
    cur.fetchone()
    conn.close()
    assert recorder.kinds() == ["StatementSummary", "ConnectionClosed"]
    assert recorder.events[0].statement_id == cur.telemetry_statement_id


def test_an_open_statement_is_told_when_its_connection_is_collected_or_at_exit(
    recorders: list[Recorder],
) -> None:
    """Without a close: the connection's finalizer (collection, or the exit hook) tells the
    statements its cursors still hold open, then the close."""
    conn = people(instrument(sqlite3, host="example.com"))
    recorder = recorders[0]
    recorder.events.clear()
    cur = conn.execute("SELECT id FROM people")
    cur.fetchone()
    sid = cur.telemetry_statement_id
    conn._session.end_at_exit()
    assert recorder.kinds() == ["StatementSummary", "ConnectionClosed"]
    assert recorder.events[0].statement_id == sid
    assert recorder.closed


def test_a_cursor_dropped_mid_result_tells_its_statement(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    assert conn.execute("SELECT id FROM people").fetchone() == (1,)
    (told,) = recorder.events
    assert (told.chunks, told.total_chunks_present, told.completed) == (1, None, True)
    conn.close()


def test_a_terminal_error_ends_its_statement_uncompleted(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO people (name) VALUES ('person-0')")
    (told,) = recorder.events
    error = told.error
    assert isinstance(error, ErrorOccurred)
    assert error.error_name == "IntegrityError"
    assert error.message == "UNIQUE constraint failed: people.name"
    assert error.statement_id == told.statement_id
    assert error.session_id == told.session_id == conn.telemetry_session_id
    assert error.retryable is False
    assert not told.completed
    conn.close()


def test_a_retryable_error_is_held_with_its_completed_statement(
    recorders: list[Recorder],
) -> None:
    db = instrument(fake_driver(ConnectionResetError("reset by peer")), host="example.com")
    conn = db.connect()
    with pytest.raises(ConnectionResetError):
        conn.cursor().execute("SELECT 1")
    assert recorders[0].kinds() == ["ConnectionOpened", "StatementSummary"]
    told = recorders[0].events[1]
    assert told.completed and told.error is not None and told.error.retryable is True
    conn.close()


def test_an_error_while_fetching_ends_the_statement_with_its_chunks(
    recorded: tuple[Any, Recorder],
) -> None:
    conn, recorder = recorded

    def fragile(value: int) -> int:
        if value > 2:
            raise ValueError("no")
        return value

    conn.create_function("fragile", 1, fragile)
    cur = conn.execute("SELECT fragile(id) FROM people ORDER BY id")
    with pytest.raises(sqlite3.OperationalError):
        list(cur)
    (told,) = recorder.events
    assert told.error is not None and told.error.error_name == "OperationalError"
    assert (told.chunks, told.completed) == (1, False)
    conn.close()


def test_session_errors_are_told_without_a_statement(recorders: list[Recorder]) -> None:
    conn = instrument(sqlite3, host="example.com").connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child (p REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    conn.execute("INSERT INTO child VALUES (42)")
    recorder = recorders[0]
    recorder.events.clear()
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.commit()
    (error,) = recorder.events
    assert error.error_name == "IntegrityError" and error.statement_id is None
    assert error.session_id == conn.telemetry_session_id
    conn.rollback()
    conn.close()


def test_errors_after_close_are_not_told(recorded: tuple[Any, Recorder]) -> None:
    conn, recorder = recorded
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.cursor()
    assert recorder.kinds() == ["ConnectionClosed"]


def test_a_failed_connect_tells_an_error_on_a_released_telemetry_connection(
    recorders: list[Recorder],
) -> None:
    db = instrument(fake_driver(FakeError("bad password"), fail_connect=True), host="example.com")
    with pytest.raises(FakeError):
        db.connect()
    (recorder,) = recorders
    (error,) = recorder.events
    assert error.error_name == "FakeError" and error.message == "bad password"
    assert recorder.closed


def test_a_connection_collected_without_close_still_ends_its_session(
    recorders: list[Recorder],
) -> None:
    conn = instrument(sqlite3, host="example.com").connect(":memory:")
    session_id = conn.telemetry_session_id
    with warnings.catch_warnings():  # the application's unclosed sqlite3 connection (3.13+)
        warnings.simplefilter("ignore", ResourceWarning)
        del conn
        gc.collect()
    closed = recorders[0].events[-1]
    assert isinstance(closed, ConnectionClosed) and closed.session_id == session_id
    assert recorders[0].closed


def test_no_sql_text_or_parameter_reaches_any_event(recorded: tuple[Any, Recorder]) -> None:
    conn, recorder = recorded
    conn.execute("SELECT 'sql-literal-7781', ? FROM people", ("param-value-9932",)).fetchall()
    conn.executemany("INSERT INTO people (name) VALUES (?)", [("param-many-4417",)])
    conn.close()
    told = repr(recorder.events)
    for secret in ("sql-literal-7781", "param-value-9932", "param-many-4417", "SELECT", "people"):
        assert secret not in told


def test_telemetry_off_tells_no_statement_events(recorders: list[Recorder]) -> None:
    conn = instrument(sqlite3, host="example.com").connect(":memory:")
    recorders[0].enabled = False
    conn.execute("SELECT 1").fetchall()
    assert recorders[0].kinds() == ["ConnectionOpened"]
    conn.close()


def test_instrument_connection_wraps_an_open_connection_under_a_given_session_id(
    recorders: list[Recorder],
) -> None:
    raw = sqlite3.connect(":memory:")
    conn = instrument_connection(raw, host="example.com", session_id="session-1", auth_type="pat")
    (opened,) = recorders[0].events
    assert opened.session_id == "session-1" and opened.latency_ms is None
    assert opened.auth_type == "pat"
    assert conn.execute("SELECT 2").fetchone() == (2,)
    assert conn.cursor().connection is conn
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("SELECT 1")


def test_each_thread_tells_on_its_own_connection(recorders: list[Recorder]) -> None:
    db = instrument(sqlite3, host="example.com")
    failures: list[BaseException] = []

    def work() -> None:
        try:
            conn = db.connect(":memory:")
            conn.execute("SELECT 1").fetchall()
            conn.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    assert not failures
    assert len(recorders) == 4
    sessions = {r.events[0].session_id for r in recorders}
    assert len(sessions) == 4


# --- plain helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("SELECT 1", StatementType.QUERY),
        ("  select * from t", StatementType.QUERY),
        ("-- note\n/* block */ (SELECT 1)", StatementType.QUERY),
        ("WITH x AS (SELECT 1) SELECT * FROM x", StatementType.QUERY),
        ("VALUES (1)", StatementType.QUERY),
        ("PRAGMA table_info(t)", StatementType.QUERY),
        ("EXPLAIN QUERY PLAN SELECT 1", StatementType.QUERY),
        ("INSERT INTO t VALUES (1)", StatementType.UPDATE),
        ("update t set a = 1", StatementType.UPDATE),
        ("DELETE FROM t", StatementType.UPDATE),
        ("REPLACE INTO t VALUES (1)", StatementType.UPDATE),
        ("MERGE INTO t USING s ON 1", StatementType.UPDATE),
        ("CREATE TABLE t (a)", StatementType.SQL),
        ("BEGIN", StatementType.SQL),
        ("", StatementType.SQL),
        ("/* never closed", StatementType.SQL),
        (b"SELECT 1", StatementType.QUERY),
        (bytearray(b" insert into t values (1)"), StatementType.UPDATE),
        (memoryview(b"-- c\nDELETE FROM t"), StatementType.UPDATE),
        (b"\xff\xfe SELECT", StatementType.QUERY),
        ("COPY t FROM STDIN", StatementType.UPDATE),
        ("copy (SELECT a FROM t) TO STDOUT", StatementType.QUERY),
        ("COPY t", StatementType.SQL),
        (None, StatementType.SQL),
        (42, StatementType.SQL),
        (memoryview(b"x").cast("B", shape=[]), StatementType.SQL),  # cannot even be sliced
    ],
)
def test_statement_type_comes_from_the_first_keyword(operation: Any, expected: Any) -> None:
    assert statement_type_of(operation) is expected


def test_statement_type_of_pathological_text_is_quick() -> None:
    for text in (" " * 100_000 + "1", "-- " * 30_000 + "1", "/*" * 50_000, "(" * 100_000):
        assert statement_type_of(text) is StatementType.SQL


def test_driver_info_defaults_to_the_modules_name_and_version() -> None:
    assert driver_info_of(sqlite3).name == "sqlite3"
    assert driver_info_of(sqlite3.connect).name == "sqlite3"
    assert driver_info_of(sqlite3.Connection).name == "sqlite3"
    assert driver_info_of(sqlite3).version in (
        sqlite3.__dict__.get("version"),
        sqlite3.sqlite_version,
    )
    module = fake_driver(FakeError())
    assert driver_info_of(module) == DriverInfo(name="fakedriver", version="9.9")


def test_instrument_accepts_a_connect_callable_and_passes_module_attributes_through(
    recorders: list[Recorder],
) -> None:
    db = instrument(sqlite3.connect, host="example.com")
    assert db.Error is sqlite3.Error
    conn = db.connect(":memory:")
    assert isinstance(conn, InstrumentedConnection)
    conn.close()


@pytest.mark.parametrize(
    "options",
    [
        {"host": ""},
        {"host": "ftp://example.com"},
        {"host": "example.com", "driver": "sqlite3"},
        {"host": "example.com", "settings": {"enabled": False}},
        {"host": "example.com", "auth": "token"},
    ],
)
def test_instrument_rejects_bad_setup_before_any_connect(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        instrument(sqlite3, **options)


def test_instrument_rejects_something_that_is_not_a_driver() -> None:
    with pytest.raises(ValueError):
        instrument(42, host="example.com")


def test_real_telemetry_disabled_in_settings_opens_no_actors() -> None:
    db = instrument(sqlite3, host="example.com", settings=TelemetrySettings(enabled=False))
    conn = db.connect(":memory:")
    conn.execute("SELECT 1").fetchall()
    conn.close()
    assert pykka.ActorRegistry.get_all() == []
