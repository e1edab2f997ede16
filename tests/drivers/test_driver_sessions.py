"""The telemetry session ends however the driver connection closes; failing statements reach the
caller as the driver's own exception objects; the driver's version and imports."""

from __future__ import annotations

import gc
import importlib.metadata
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from servers import require_module

from actors.dbapi import (
    driver_info_of,
)
from messages.events import ConnectionClosed, ErrorOccurred, StatementSummary

from .checks import people
from .conftest import (
    DRIVERS,
    PairOf,
    Recording,
    last_recording,
)

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
    told = last_recording(pair).of(StatementSummary)
    assert [type(s.error) for s in told[-3:]] == [ErrorOccurred] * 3


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

    module = require_module(name, distribution)
    assert driver_info_of(module).version == importlib.metadata.version(distribution)
    assert driver_info_of(module).name == name
