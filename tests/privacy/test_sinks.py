"""The same masking for every sink, and `telemetry.error_text=class_only` sends no message text.

A real sqlite3 error with planted data goes through the instrumented driver to the file sink and
to the endpoint: both get the same masked text. With ``class_only`` the endpoint's raw bytes hold
the class name and the code, and not one word of the message.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from typing import Any

import pytest
from _wire import TOKEN, Wire
from waiting import poll_until

import actors
from actors.dbapi import instrument

TIMEOUT_S = 10.0
PLANTED = "ghost_q7x9k2"


def _fail_on_missing_table(db: Any) -> None:
    conn = db.connect(":memory:")
    try:
        with pytest.raises(sqlite3.OperationalError):
            conn.execute(f"SELECT secret_c9 FROM {PLANTED} WHERE note = 'hidden-v4l'")
    finally:
        conn.close()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _settings(**overrides: Any) -> actors.TelemetrySettings:
    return actors.TelemetrySettings(force_enable=True, flush_interval_ms=50, **overrides)


def _endpoint_traces(wire: Wire) -> list[str]:
    assert actors.flush(TIMEOUT_S)
    infos = poll_until(wire.error_infos, TIMEOUT_S, "an error log")
    return [info.get("stack_trace", "") for info in infos]


def test_the_file_sink_and_the_endpoint_get_the_same_masked_text(
    wire: Wire, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "telemetry.jsonl"
    to_file = instrument(
        sqlite3,
        host="https://file-sink.example.invalid",
        auth=_auth,
        settings=_settings(sink="file", file_path=str(path)),
    )
    _fail_on_missing_table(to_file)
    _fail_on_missing_table(instrument(sqlite3, host=wire.url, auth=_auth, settings=_settings()))
    assert actors.shutdown(TIMEOUT_S) is True

    written = path.read_text(encoding="utf-8")
    logs = [json.loads(line) for line in written.splitlines()]
    in_file = [
        log["entry"]["sql_driver_log"]["error_info"]["stack_trace"]
        for log in logs
        if "error_info" in log["entry"]["sql_driver_log"]
    ]
    assert in_file == ["[SQLITE_ERROR] no such table: <id>"]
    assert in_file == [info["stack_trace"] for info in wire.error_infos()]
    for data in (PLANTED, "secret_c9", "hidden-v4l"):
        assert data not in written and data.encode() not in wire.received()


def test_class_only_sends_the_class_and_code_and_no_word_of_the_message(wire: Wire) -> None:
    db = instrument(sqlite3, host=wire.url, auth=_auth, settings=_settings(error_text="class_only"))
    _fail_on_missing_table(db)

    assert _endpoint_traces(wire) == ["[SQLITE_ERROR]"]
    (info,) = wire.error_infos()
    assert info["error_name"] == "OperationalError"
    received = wire.received()
    for word in (b"no such table", PLANTED.encode()):
        assert word not in received
