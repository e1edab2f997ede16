"""The page's JSON API on a real endpoint (127.0.0.1:0): read-only, equal to what the store
holds, paginated, filtered, and showing the in-process client's accounting."""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from page_data import frontend_log, get_json, known_logs, post, send
from waiting import poll_until

import actors
from actors.tools.local_endpoint import LocalEndpoint, LogStore
from actors.tools.local_endpoint.insights import Reader
from messages import events as ev

TOKEN = "page-token"


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(token=TOKEN).serve_page() as started:
        yield started


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/api/summary", "/api/logs", "/api/health", "/api/x", "/"])
def test_the_page_and_its_api_refuse_every_method_but_get_and_head(
    endpoint: LocalEndpoint, method: str, path: str
) -> None:
    send(endpoint.url, known_logs(), TOKEN)
    before = endpoint.store.count()

    status, body = post(endpoint.url, path, b'{"drop": "table"}', TOKEN, method=method)

    assert status == 405
    assert json.loads(body) == {"error": "read-only: use GET"}
    assert endpoint.store.count() == before


def test_summary_equals_what_the_store_holds(endpoint: LocalEndpoint) -> None:
    send(endpoint.url, known_logs(), TOKEN)
    store = endpoint.store

    status, summary = get_json(endpoint.url, "/api/summary")

    assert status == 200
    assert summary["kinds"] == store.counts_by_kind()
    assert summary["total"] == store.count()
    assert summary["hosts"] == {endpoint.host_port: store.count()}
    for statement_type, expected in store.latency_percentiles_by_statement_type().items():
        shown = summary["latency"]["statement_type"][statement_type]
        assert {p: shown[p] for p in ("p50", "p90", "p99")} == pytest.approx(expected)
    assert summary["latency"]["statement_type"]["QUERY"]["p50"] == 25.0
    assert summary["latency"]["operation_type"]["EXECUTE_STATEMENT"]["count"] == 7
    groups = {(g["error_name"], g["sqlstate"]): g["count"] for g in summary["errors"]}
    assert groups == {("ProgrammingError", "42P01"): 3, ("IntegrityError", None): 2}
    rates = summary["series"]["statements"]
    assert sum(rates) * summary["series"]["step_ms"] / 1000 == pytest.approx(7)


def test_logs_page_newest_first_and_live_tail_returns_only_newer_logs(
    endpoint: LocalEndpoint,
) -> None:
    send(endpoint.url, known_logs(), TOKEN)
    total = endpoint.store.count()

    _, first = get_json(endpoint.url, "/api/logs?limit=5")
    ids = [log["id"] for log in first["logs"]]
    _, older = get_json(endpoint.url, f"/api/logs?limit=50&before={first['more_before']}")
    send(endpoint.url, [frontend_log("statement", latency_ms=1)], TOKEN)
    _, tail = get_json(endpoint.url, f"/api/logs?since={first['last_id']}")

    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    assert [log["id"] for log in older["logs"]] == list(range(ids[-1] - 1, 0, -1))
    assert len(ids) + len(older["logs"]) == total
    assert [log["id"] for log in tail["logs"]] == [total + 1]
    assert tail["logs"][0]["entry"]["operation_latency_ms"] == 1


def test_filters_by_host_kind_and_window(endpoint: LocalEndpoint) -> None:
    send(endpoint.url, known_logs(), TOKEN)
    old = [frontend_log("statement", latency_ms=5)]
    endpoint.store.add(
        old,
        host="elsewhere:1",
        path="/telemetry-ext",
        authorized=True,
        received_at_ms=int(time.time() * 1000) - 3_600_000,
    )

    _, errors = get_json(endpoint.url, "/api/logs?kind=error&limit=500")
    _, other = get_json(endpoint.url, "/api/summary?host=elsewhere:1")
    _, recent = get_json(endpoint.url, "/api/summary?window_s=60")

    assert {log["kind"] for log in errors["logs"]} == {"error"}
    assert len(errors["logs"]) == endpoint.store.counts_by_kind()["error"]
    assert other["kinds"] == {"statement": 1}
    assert recent["total"] == endpoint.store.count() - 1


@pytest.mark.parametrize(
    "target", ["/api/logs?limit=ten", "/api/summary?kind=%3Cscript%3E", "/api/logs?since=-1"]
)
def test_invalid_query_parameters_answer_400_with_a_reason(
    endpoint: LocalEndpoint, target: str
) -> None:
    status, answer = get_json(endpoint.url, target)

    assert status == 400
    assert "must be" in answer["error"]


def test_rejected_bodies_show_in_health_with_their_validation_reason(
    endpoint: LocalEndpoint,
) -> None:
    status, _ = post(endpoint.url, "/telemetry-ext", b'{"uploadTime": 5}', TOKEN)

    _, health = get_json(endpoint.url, "/api/health")

    assert status == 400
    host = health["hosts"][endpoint.host_port]
    assert host["rejected"]["count"] == 1
    assert host["rejected"]["latest"][0]["reason"] == "items: missing required field"
    assert {"path": "/telemetry-ext", "status": 400, "count": 1} in host["requests"]
    assert host["client"] is None


def test_health_shows_the_in_process_clients_accounting_per_host() -> None:
    store = LogStore()
    with LocalEndpoint(token=TOKEN, store=store).serve_page(
        client_state=lambda: actors.dump_state(1.0)
    ) as endpoint:
        conn = actors.connect(
            endpoint.url,
            {"telemetry.flush_interval_ms": "100"},
            driver=actors.DriverInfo(name="PageTestDriver", version="1.0"),
            auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
        )
        conn.tell(ev.ConnectionOpened(session_id="s-1", latency_ms=3))
        conn.tell(ev.StatementStarted(statement_id="q-1", session_id="s-1"))
        conn.tell(ev.StatementCompleted(statement_id="q-1", operation_latency_ms=4))
        assert actors.flush(5.0)
        poll_until(lambda: store.count() == 2, 5.0, "the two logs stored")

        _, health = get_json(endpoint.url, "/api/health")
        conn.close()

    client = health["hosts"][endpoint.host_port]["client"]
    assert health["client_in_process"] is True
    assert (
        client["told"] == client["exported"] + sum(client["dropped"].values()) + client["pending"]
    )
    assert client["exported"] == 3 and client["balanced"] is True
    assert client["breaker"] == "CLOSED"
    store.close()


def test_page_files_are_served_with_a_strict_content_security_policy(
    endpoint: LocalEndpoint,
) -> None:
    for path, kind in (("/", "text/html"), ("/static/app.js", "text/javascript")):
        connection = http.client.HTTPConnection(
            "127.0.0.1", int(endpoint.host_port.split(":")[1]), timeout=5
        )
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith(kind)
        assert "script-src 'self'" in response.getheader("Content-Security-Policy", "")
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        text = body.decode().replace("http://www.w3.org/2000/svg", "")  # a name, not a fetch
        assert "http://" not in text and "https://" not in text  # nothing loads from elsewhere


def test_a_file_store_is_read_through_a_connection_sqlite_keeps_read_only(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path / "logs.sqlite3"))
    reader = Reader(store)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader("DELETE FROM frontend_logs")
    finally:
        reader.close()
        store.close()


@pytest.mark.parametrize("host", ["evil.example:80", "evil.example", "10.0.0.1:8765", ""])
def test_a_loopback_page_refuses_requests_naming_another_host(
    endpoint: LocalEndpoint, host: str
) -> None:
    connection = http.client.HTTPConnection(
        "127.0.0.1", int(endpoint.host_port.split(":")[1]), timeout=5
    )
    try:
        connection.putrequest("GET", "/api/summary", skip_host=True)
        if host:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 421
        assert b"127.0.0.1" in response.read()
    finally:
        connection.close()


def test_the_endpoint_does_not_serve_the_page_unless_asked() -> None:
    with LocalEndpoint(token=TOKEN) as plain:
        status, _ = get_json(plain.url, "/api/summary")
    assert status == 404


def test_serve_binds_127_0_0_1_by_default_and_prints_the_page_address(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "actors", "serve", "--db", str(tmp_path / "s.sqlite3")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        page = re.search(r"page: (http://127\.0\.0\.1:[0-9]+/)", lines[1])
        assert page, lines
        status, summary = get_json(page[1].rstrip("/"), "/api/summary")
        assert status == 200 and summary["total"] == 0
    finally:
        code = _stop(process)
    assert code == 0


def test_demo_prints_the_page_and_with_stay_keeps_serving_its_accounting(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "actors", "demo", "--duration", "0.3", "--threads", "2"]
    process = subprocess.Popen(
        [*command, "--hosts", "2", "--db", str(tmp_path / "d.sqlite3"), "--stay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert re.fullmatch(
            r"page: http://127\.0\.0\.1:[0-9]+/ \(live while the demo runs\)\n", first
        )
        while "stays up" not in (line := process.stderr.readline()):
            assert line, "the demo ended without staying up"
        url = re.search(r"(http://127\.0\.0\.1:[0-9]+)/", line)
        assert url and url[1] in first
        status, health = get_json(url[1], "/api/health")
        assert status == 200 and health["client_in_process"] is True
        assert len(health["hosts"]) == 2
        for host in health["hosts"].values():
            client = host["client"]
            assert client["balanced"] is True and client["told"] == client["exported"] > 0
            assert host["stored_logs"] > 0
    finally:
        code = _stop(process)
    assert code == 0


def _stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM, a bounded wait (then a kill), pipes closed; the exit code."""
    process.terminate()
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return -1
    finally:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_a_store_made_before_the_page_gains_its_columns_and_is_summarised(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    log = frontend_log("statement", latency_ms=12, statement_type="UPDATE")
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE frontend_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at_ms "
        "INTEGER NOT NULL, host TEXT NOT NULL, path TEXT NOT NULL, authorized INTEGER NOT NULL, "
        "frontend_log_event_id TEXT NOT NULL UNIQUE, session_id TEXT, sql_statement_id TEXT, "
        "kind TEXT NOT NULL, statement_type TEXT, operation_latency_ms INTEGER, error_name TEXT, "
        "raw_json TEXT NOT NULL);"
    )
    old.execute(
        "INSERT INTO frontend_logs VALUES (1, 1, 'h:1', '/telemetry-ext', 1, ?, 's', 'q', "
        "'statement', 'UPDATE', 12, NULL, ?)",
        (log["frontend_log_event_id"], json.dumps(log)),
    )
    old.commit()
    old.close()

    with LocalEndpoint(db_path=str(path)).serve_page() as endpoint:
        status, summary = get_json(endpoint.url, "/api/summary")

    assert status == 200
    assert summary["latency"]["operation_type"]["EXECUTE_STATEMENT"]["p50"] == 12
    assert summary["series"]["start_ms"] == log["context"]["client_context"]["timestamp_millis"]
