"""The driver thread's cheap paths: ids without uuid4, the statement-type memo, the off module."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import uuid

import pytest

import actors.dbapi.support as support
from actors._runtime.ids import new_id
from actors.dbapi import instrument, statement_type_of
from messages.enums import StatementType

UUID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_uuid_shaped_and_unique_across_threads() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    ids = [one for into in found for one in into]
    assert len(ids) == 20000
    assert len(set(ids)) == 20000
    assert all(UUID_SHAPE.match(one) for one in ids)
    assert all(uuid.UUID(one).version == 4 for one in ids[:50])


def test_ids_of_a_forked_child_differ_from_its_parents() -> None:
    script = (
        "import os, sys\n"
        "from actors._runtime.ids import new_id\n"
        "print(new_id()[:24], flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(new_id()[:24], flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    parent, child = done.stdout.split()
    assert parent != child


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("SELECT 1", StatementType.QUERY),
        ("  /* c */ (select 1)", StatementType.QUERY),
        ("insert into t values (1)", StatementType.UPDATE),
        ("COPY t TO STDOUT", StatementType.QUERY),
        ("COPY t FROM STDIN", StatementType.UPDATE),
        ("create table t (a)", StatementType.SQL),
        ("", StatementType.SQL),
    ],
)
def test_memo_answers_what_the_scan_answers(text: str, kind: StatementType) -> None:
    support._TYPES.clear()
    assert statement_type_of(text) is kind  # scanned
    assert support._TYPES[text] is kind
    assert statement_type_of(text) is kind  # remembered
    assert statement_type_of(text.encode()) is kind  # bytes are scanned, not remembered


def test_memo_is_bounded_and_skips_long_texts() -> None:
    support._TYPES.clear()
    for n in range(support._CACHE_SIZE + 10):
        assert statement_type_of(f"select {n}") is StatementType.QUERY
    assert 0 < len(support._TYPES) <= support._CACHE_SIZE
    support._TYPES.clear()
    long_text = "select " + "x" * support._CACHED_CHARS
    assert statement_type_of(long_text) is StatementType.QUERY
    assert support._TYPES == {}


def test_memo_ignores_str_subclasses() -> None:
    class Sql(str):
        pass

    support._TYPES.clear()
    assert statement_type_of(Sql("delete from t")) is StatementType.UPDATE
    assert support._TYPES == {}


@pytest.mark.parametrize("properties", [{"telemetry.enabled": "false"}, {"TELEMETRY.ENABLED": "0"}])
def test_off_in_configuration_hands_back_the_drivers_own_objects(
    properties: dict[str, object],
) -> None:
    db = instrument(sqlite3, host="127.0.0.1", properties=properties)
    assert db.connect is sqlite3.connect
    conn = db.connect(":memory:")
    try:
        assert type(conn) is sqlite3.Connection
        assert type(conn.cursor()) is sqlite3.Cursor
    finally:
        conn.close()
    assert db.Error is sqlite3.Error  # the rest of the module passes through


def test_kill_switch_in_the_environment_hands_back_the_drivers_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from messages.config import KILL_SWITCH_ENV

    monkeypatch.setenv(KILL_SWITCH_ENV, "1")
    assert instrument(sqlite3.connect, host="127.0.0.1").connect is sqlite3.connect


def test_on_in_configuration_still_wraps() -> None:
    db = instrument(sqlite3, host="127.0.0.1", properties={"telemetry.enabled": "true"})
    assert db.connect is not sqlite3.connect
