"""Known frontend logs for the page's tests, sent to a real endpoint as a driver would send them."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 5.0


def frontend_log(
    kind: str,
    *,
    latency_ms: int | None = None,
    statement_type: str = "QUERY",
    operation_type: str = "EXECUTE_STATEMENT",
    error_name: str | None = None,
    message: str | None = None,
    session_id: str = "session-1",
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """One valid frontend log of `kind` (connection, statement, error or close)."""
    entry: dict[str, Any] = {"session_id": session_id}
    if kind == "connection":
        entry["system_configuration"] = {"driver_name": "PageTestDriver", "driver_version": "1.0"}
        entry["auth_type"] = "pat"
    elif kind in ("statement", "error"):
        entry["sql_statement_id"] = str(uuid.uuid4())
        entry["sql_operation"] = {
            "statement_type": statement_type,
            "operation_detail": {"operation_type": operation_type},
        }
    elif kind == "close":
        entry["sql_operation"] = {"operation_detail": {"operation_type": "DELETE_SESSION"}}
    if kind == "error":
        entry["error_info"] = {"error_name": error_name or "Error"}
        if message is not None:
            entry["error_info"]["stack_trace"] = message
    if latency_ms is not None:
        entry["operation_latency_ms"] = latency_ms
    return {
        "frontend_log_event_id": str(uuid.uuid4()),
        "context": {
            "client_context": {
                "timestamp_millis": timestamp_ms or int(time.time() * 1000),
                "user_agent": "PageTestDriver/1.0",
            }
        },
        "entry": {"sql_driver_log": entry},
    }


def post(
    url: str, path: str, body: bytes, token: str | None = None, method: str = "POST"
) -> tuple[int, bytes]:
    """Send one request to the endpoint at `url`; return (status, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def send(url: str, logs: Sequence[dict[str, Any]], token: str | None = None) -> None:
    """Export `logs` in one `/telemetry-ext` request; fail unless all were accepted."""
    body = json.dumps(
        {
            "uploadTime": int(time.time() * 1000),
            "items": [],
            "protoLogs": [json.dumps(log) for log in logs],
        }
    ).encode()
    status, answer = post(url, "/telemetry-ext", body, token)
    assert status == 200, answer
    assert json.loads(answer)["numProtoSuccess"] == len(logs)


def get_json(url: str, target: str) -> tuple[int, Any]:
    """GET `target` from the endpoint; return (status, decoded JSON)."""
    status, body = post(url, target, b"", method="GET")
    return status, json.loads(body)


def known_logs() -> list[dict[str, Any]]:
    """A session with known latencies and errors: QUERY latencies 10, 20, 30, 40 (p50 25 ms)."""
    now_ms = int(time.time() * 1000)
    logs = [frontend_log("connection", latency_ms=7, timestamp_ms=now_ms - 20_000)]
    logs += [
        frontend_log("statement", latency_ms=ms, timestamp_ms=now_ms - 4000 * i)
        for i, ms in enumerate((10, 20, 30, 40))
    ]
    logs += [
        frontend_log("statement", latency_ms=ms, statement_type="UPDATE", timestamp_ms=now_ms - t)
        for ms, t in ((3, 1000), (5, 9000), (9, 13000))
    ]
    logs += [
        frontend_log(
            "error",
            error_name="ProgrammingError",
            message=f"[SQLSTATE 42P01] table t{i} does not exist",
        )
        for i in range(3)
    ]
    logs += [
        frontend_log("error", error_name="IntegrityError", message="UNIQUE constraint failed")
        for _ in range(2)
    ]
    logs.append(frontend_log("close", latency_ms=1))
    return logs
