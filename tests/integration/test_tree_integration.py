"""The whole pipeline against real local endpoints: connect -> tell -> actors -> HTTP -> store.

Each `LocalEndpoint` validates every request body against the wire format on its own (a bad body
is answered 400 and stored nowhere), so a stored log is a log that was on the wire correctly.

How events are counted against stored logs: the endpoint stores logs, the accounts count told
events. A workload returns the logs it must produce as ``{identity: events}``, where identity is
``(kind, session_id, sql_statement_id)`` exactly as the endpoint derives them from a stored log,
and events is how many told events that one log stands for: a statement log stands for all of its
statement's events (start, polls, chunks, held error, completion), a connection, session-close,
statement-close or lone error log for one. `events_of(stored, expected)` sums that over what the
endpoint stored (refusing unknown or duplicate logs), and every test checks that it equals the
host's ``accounting["exported"]``, with the accounting ``balanced``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

import actors
from actors.tools.local_endpoint import Fault, LocalEndpoint, derive_kind, validate_request
from messages import events as ev
from messages.enums import AuthFlow, AuthMech, DriverMode, ExecutionResultFormat, StatementType
from messages.records import DriverConnectionParams, HostInfo

if TYPE_CHECKING:
    from .conftest import Harness

DRIVER = actors.DriverInfo(name="IntegrationDriver", version="9.9.9")
USER_AGENT = "IntegrationDriver/9.9.9"
WORKSPACE_ID = 1234567890123
HTTP_PATH = f"/sql/1.0/warehouses/abc123?o={WORKSPACE_ID}"
SECRET = "hunter2-not-for-the-wire"
PARAMS = DriverConnectionParams(
    http_path="/sql/1.0/warehouses/abc123",
    mode=DriverMode.THRIFT,
    host_info=HostInfo(host_url="https://example.invalid", port=443),
    auth_mech=AuthMech.PAT,
    auth_flow=AuthFlow.TOKEN_PASSTHROUGH,
    enable_arrow=True,
    socket_timeout=900,
)

Identity = tuple[str, str | None, str | None]
Expected = dict[Identity, int]


def fast_settings(**overrides: Any) -> actors.TelemetrySettings:
    """Settings small enough that flushes, retries and breaker periods fit a quick test."""
    values: dict[str, Any] = {
        "flush_interval_ms": 50,
        "retry_delay_ms": 10,
        "retry_max_delay_ms": 50,
        "breaker_open_s": 1,
        "shutdown_timeout_ms": 1500,
    }
    values.update(overrides)
    return actors.TelemetrySettings(**values)


def bearer(token: str) -> Callable[[], dict[str, str]]:
    """An auth provider returning `Authorization: Bearer <token>`."""
    return lambda: {"Authorization": f"Bearer {token}"}


def open_connection(
    url: str,
    auth: Callable[[], dict[str, str]] | None,
    settings: actors.TelemetrySettings | None = None,
) -> actors.Connection:
    """`actors.connect` as a driver would call it, with fast settings by default."""
    return actors.connect(
        url, driver=DRIVER, auth=auth, http_path=HTTP_PATH, settings=settings or fast_settings()
    )


def tell_session(connection: actors.Connection, session_id: str, statements: int = 2) -> Expected:
    """Tell one session's worth of events (all kinds of log); return the logs it must produce."""
    assert statements >= 1
    expected: Expected = {}

    def tell(identity: Identity, *events: object) -> None:
        for event in events:
            assert connection.tell(event) is True
        expected[identity] = expected.get(identity, 0) + len(events)

    sid = session_id
    opened = ev.ConnectionOpened(
        session_id=sid, connection_params=PARAMS, auth_type="pat", latency_ms=12.5
    )
    tell(("connection", sid, None), opened)
    for i in range(statements):
        q = f"{sid}/q{i}"
        tell(
            ("statement", sid, q),
            ev.StatementStarted(statement_id=q, session_id=sid, statement_type=StatementType.QUERY),
            ev.OperationPolled(statement_id=q, latency_ms=5.0),
            ev.OperationPolled(statement_id=q, latency_ms=7.0),
            ev.ChunkDownloaded(statement_id=q, chunk_index=0, latency_ms=11.0, size_bytes=1000),
            ev.ChunkDownloaded(statement_id=q, chunk_index=1, latency_ms=30.0, compressed=True),
            ev.StatementCompleted(
                statement_id=q,
                execution_result=ExecutionResultFormat.INLINE_ARROW,
                result_ready_latency_ms=40.0,
                consumption_latency_ms=60.0,
                operation_latency_ms=100.4,
                total_chunks_present=2,
            ),
        )
    # Closing an already-emitted statement: a close log of its own, without the session id.
    tell(("statement", None, f"{sid}/q0"), ev.StatementClosed(statement_id=f"{sid}/q0"))
    retried = f"{sid}/retried"  # a retryable error is held with its statement until it completes
    tell(
        ("error", sid, retried),
        ev.StatementStarted(statement_id=retried, session_id=sid),
        ev.ErrorOccurred(error_name="ServerBusy", http_status=503, statement_id=retried),
        ev.StatementCompleted(statement_id=retried, retry_count=1, operation_latency_ms=20.0),
    )
    failed = f"{sid}/failed"  # a terminal error ends its statement at once
    tell(
        ("error", sid, failed),
        ev.StatementStarted(statement_id=failed, session_id=sid, statement_type=StatementType.SQL),
        ev.ErrorOccurred(
            error_name="ProgrammingError",
            message=f"syntax error near 'x' password={SECRET}",
            http_status=400,
            statement_id=failed,
        ),
    )
    cancelled = f"{sid}/cancelled"
    tell(
        ("statement", sid, cancelled),
        ev.StatementStarted(statement_id=cancelled, session_id=sid),
        ev.StatementCancelled(statement_id=cancelled),
    )
    left_open = f"{sid}/open"  # still open at ConnectionClosed: emitted with the session's close
    tell(
        ("statement", sid, left_open),
        ev.StatementStarted(statement_id=left_open, session_id=sid),
        ev.OperationPolled(statement_id=left_open, latency_ms=3.0),
    )
    tell(("error", sid, None), ev.ErrorOccurred(error_name="OperationalError", session_id=sid))
    tell(("close", sid, None), ev.ConnectionClosed(session_id=sid, latency_ms=4.0))
    return expected


KINDS_PER_SESSION = {"connection": 1, "statement": 5, "error": 3, "close": 1}  # statements=2


def identity(log: dict[str, Any]) -> Identity:
    """A stored log's identity, derived the way the endpoint derives its columns."""
    entry = log["entry"]["sql_driver_log"]
    return derive_kind(log), entry.get("session_id"), entry.get("sql_statement_id")


def events_of(stored: list[dict[str, Any]], expected: Expected) -> int:
    """How many told events the stored logs stand for; every stored log must be expected, once."""
    identities = [identity(log) for log in stored]
    unexpected = [i for i in identities if i not in expected]
    assert not unexpected, f"stored logs nobody told: {unexpected}"
    duplicates = [i for i, n in Counter(identities).items() if n > 1]
    assert not duplicates, f"logs stored twice: {duplicates}"
    return sum(expected[i] for i in identities)


def telemetry_posts(endpoint: LocalEndpoint, route: str = "/telemetry-ext") -> dict[int, int]:
    """Statuses the endpoint answered on a telemetry route: {status: count}."""
    return dict(endpoint.stats()["requests"].get(route, {}))


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- happy path -----------------------------------------------------------------------------


def test_session_of_statements_and_errors_is_stored_as_one_validated_log_per_statement(
    endpoint: LocalEndpoint, token: str, harness: Harness
) -> None:
    connection = open_connection(endpoint.url, bearer(token))
    expected = tell_session(connection, "s-happy")
    told = sum(expected.values())

    account = harness.settled(connection.host, told)

    stored = endpoint.store.logs()
    assert account["dropped"] == {}
    assert account["exported"] == events_of(stored, expected) == told
    assert endpoint.store.counts_by_kind() == KINDS_PER_SESSION
    assert set(telemetry_posts(endpoint)) == {200}  # the endpoint's validator refused nothing
    report = harness.report(connection.host)
    assert report["aggregator"]["exported_logs"] == len(stored)  # numProtoSuccess, consumed
    assert report["exporter"]["breaker"]["state"] == "CLOSED"
    stats = endpoint.stats()
    assert stats["flag_fetches"] == stats["flag_fetches_authorized"] == 1
    assert stats["logs_accepted"] == len(stored)

    rows = endpoint.store.rows()
    assert {(row["path"], row["authorized"]) for row in rows} == {("/telemetry-ext", True)}
    assert {row["host"] for row in rows} == {endpoint.host_port}
    for log in stored:
        assert log["workspace_id"] == WORKSPACE_ID
        assert log["context"]["client_context"]["user_agent"] == USER_AGENT
    by_id = {identity(log): log["entry"]["sql_driver_log"] for log in stored}
    statement = by_id[("statement", "s-happy", "s-happy/q1")]
    assert statement["operation_latency_ms"] == 100
    assert statement["sql_operation"]["chunk_details"]["total_chunks_iterated"] == 2
    assert statement["sql_operation"]["operation_detail"]["n_operation_status_calls"] == 2
    assert statement["sql_operation"]["is_compressed"] is True
    connection_log = by_id[("connection", "s-happy", None)]
    assert connection_log["system_configuration"]["driver_name"] == "IntegrationDriver"
    assert "host_info" not in connection_log["driver_connection_params"]  # never the address
    failed = by_id[("error", "s-happy", "s-happy/failed")]
    assert failed["error_info"]["error_name"] == "ProgrammingError"
    assert SECRET not in json.dumps(stored)

    connection.close()
    assert actors.shutdown(2.0) is True
    final = actors.dump_state()["hosts"][connection.host]["accounting"]
    assert final["balanced"] and final["complete"]
    assert (final["told"], final["exported"], final["pending"]) == (told, told, 0)


def test_flush_right_after_connect_waits_for_the_flag_then_has_sent_everything(
    endpoint: LocalEndpoint, token: str, harness: Harness
) -> None:
    connection = open_connection(
        endpoint.url, bearer(token), fast_settings(flush_interval_ms=60_000)
    )
    expected = tell_session(connection, "s-flush")
    told = sum(expected.values())

    assert actors.flush(3.0) is True

    # No polling: a True flush means every queued log was attempted (and settled) already.
    stored = endpoint.store.logs()
    assert events_of(stored, expected) == told
    account = harness.report(connection.host)["accounting"]
    assert account["balanced"]
    assert (account["exported"], account["pending"], account["dropped"]) == (told, 0, {})


def test_partial_acknowledgement_counts_only_the_logs_the_server_accepted(
    make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoint = make_endpoint(fault=Fault(mode="partial", k=1))  # every batch loses its last log
    connection = open_connection(endpoint.url, bearer(token))
    expected = tell_session(connection, "s-partial")
    told = sum(expected.values())

    account = harness.settled(connection.host, told)

    stored = endpoint.store.logs()
    assert account["exported"] == events_of(stored, expected)
    assert set(account["dropped"]) == {"partial_rejected"}
    assert account["dropped"]["partial_rejected"] == told - account["exported"] > 0
    assert harness.report(connection.host)["aggregator"]["exported_logs"] == len(stored)


# --- feature flag ---------------------------------------------------------------------------


def test_flag_off_stores_nothing_and_drops_every_event_as_flag_off(
    make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoint = make_endpoint(flag_enabled=False)
    connection = open_connection(endpoint.url, bearer(token))
    told = sum(tell_session(connection, "s-off").values())

    account = harness.settled(connection.host, told)

    assert account["exported"] == 0
    assert account["dropped"] == {"flag_off": told}
    assert endpoint.store.count() == 0
    assert telemetry_posts(endpoint) == {}
    harness.wait_until(lambda: connection.enabled is False, what="the driver to see the flag off")


@pytest.mark.parametrize("failure", ["status_500", "unreachable"])
def test_flag_fetch_that_fails_is_treated_as_off(
    failure: str, make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoint: LocalEndpoint | None = None
    if failure == "status_500":
        endpoint = make_endpoint(fault=Fault(mode="status", status=500, applies_to_flags=True))
        url = endpoint.url
    else:
        url = f"http://127.0.0.1:{free_port()}"
    connection = open_connection(url, bearer(token))
    told = sum(tell_session(connection, f"s-{failure}").values())

    account = harness.settled(connection.host, told)

    assert account["exported"] == 0
    assert account["dropped"] == {"flag_off": told}
    flags = harness.report(connection.host)["feature_flags"]
    assert (flags["enabled"], flags["source"]) == (False, "fetch_failed")
    if endpoint is not None:
        assert endpoint.stats()["flag_fetches"] == 1
        assert telemetry_posts(endpoint) == {}
        assert endpoint.store.count() == 0


def test_force_enable_exports_even_though_the_server_flag_is_off(
    make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoint = make_endpoint(flag_enabled=False)
    connection = open_connection(endpoint.url, bearer(token), fast_settings(force_enable=True))
    expected = tell_session(connection, "s-forced")
    told = sum(expected.values())

    account = harness.settled(connection.host, told)

    assert account["dropped"] == {}
    assert account["exported"] == events_of(endpoint.store.logs(), expected) == told
    assert endpoint.stats()["flag_fetches"] == 0
    assert harness.report(connection.host)["feature_flags"]["source"] == "force_enable"


# --- retries --------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_the_server_delay_and_stored(
    make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoint = make_endpoint(fault=Fault(mode="retry_after", retry_after_s=1, times=1))
    connection = open_connection(endpoint.url, bearer(token))
    expected = tell_session(connection, "s-429")
    told = sum(expected.values())

    harness.wait_until(lambda: telemetry_posts(endpoint).get(429), what="the 429")
    refused_at = time.monotonic()
    account = harness.settled(connection.host, told)
    waited_s = time.monotonic() - refused_at

    assert waited_s >= 0.9  # Retry-After: 1 wins over the 10-50 ms backoff
    assert account["dropped"] == {}
    assert account["exported"] == events_of(endpoint.store.logs(), expected) == told
    exporter = harness.report(connection.host)["exporter"]
    assert exporter["stats"]["retries_scheduled"] == 1
    assert exporter["responses"]["429"] == 1
    assert telemetry_posts(endpoint)[429] == 1


def test_503_twice_then_success_is_stored_and_the_retries_show_in_exporter_stats(
    make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoint = make_endpoint(fault=Fault(mode="status", status=503, times=2))
    connection = open_connection(endpoint.url, bearer(token))
    expected = tell_session(connection, "s-503")
    told = sum(expected.values())

    account = harness.settled(connection.host, told)

    assert account["dropped"] == {}
    assert account["exported"] == events_of(endpoint.store.logs(), expected) == told
    exporter = harness.report(connection.host)["exporter"]
    assert exporter["stats"]["retries_scheduled"] == 2
    assert exporter["responses"]["503"] == 2
    assert exporter["breaker"]["state"] == "CLOSED"
    assert telemetry_posts(endpoint)[503] == 2


# --- credentials ----------------------------------------------------------------------------


def test_401_is_terminal_not_retried_dropped_as_unauthorized_and_keeps_the_breaker_closed(
    endpoint: LocalEndpoint, harness: Harness
) -> None:
    settings = fast_settings(breaker_threshold=1)  # one counted failure would open it
    connection = open_connection(endpoint.url, bearer("wrong-token"), settings)
    told = sum(tell_session(connection, "s-401a").values())
    harness.settled(connection.host, told)
    told += sum(tell_session(connection, "s-401b").values())  # a second batch, at least

    account = harness.settled(connection.host, told)

    assert account["exported"] == 0
    assert account["dropped"] == {"unauthorized": told}
    exporter = harness.report(connection.host)["exporter"]
    assert exporter["stats"].get("retries_scheduled", 0) == 0
    assert exporter["stats"]["attempts"] == exporter["stats"]["batches_settled"] >= 2
    assert exporter["breaker"]["state"] == "CLOSED"
    assert exporter["breaker"]["consecutive_failures"] == 0
    assert set(telemetry_posts(endpoint)) == {401}
    assert endpoint.store.count() == 0


def test_unauthenticated_connection_sends_to_telemetry_unauth_without_session_ids(
    endpoint: LocalEndpoint, harness: Harness
) -> None:
    connection = open_connection(endpoint.url, None)
    expected = tell_session(connection, "s-unauth")
    told = sum(expected.values())

    account = harness.settled(connection.host, told)

    # Ids are stripped, so identities collapse: match per kind instead. Every expected log was
    # stored (same count per kind), so the stored logs stand for every told event.
    stored_kinds = endpoint.store.counts_by_kind()
    assert stored_kinds == dict(Counter(kind for kind, _, _ in expected))
    assert account["dropped"] == {}
    assert account["exported"] == told
    rows = endpoint.store.rows()
    assert {(row["path"], row["authorized"]) for row in rows} == {("/telemetry-unauth", False)}
    assert {(row["session_id"], row["sql_statement_id"]) for row in rows} == {(None, None)}
    for log in endpoint.store.logs():
        assert "workspace_id" not in log
        assert "driver_connection_params" not in log["entry"]["sql_driver_log"]
    assert telemetry_posts(endpoint) == {}
    assert set(telemetry_posts(endpoint, "/telemetry-unauth")) == {200}
    assert endpoint.stats()["flag_fetches_authorized"] == 0


def test_two_connections_to_one_host_each_send_with_their_own_token(
    endpoint: LocalEndpoint, token: str, harness: Harness
) -> None:
    wrong = open_connection(endpoint.url, bearer("someone-elses-token"))
    right = open_connection(endpoint.url, bearer(token))
    assert wrong.host == right.host
    expected_wrong = tell_session(wrong, "s-wrong")
    expected_right = tell_session(right, "s-right")
    told_wrong, told_right = sum(expected_wrong.values()), sum(expected_right.values())

    account = harness.settled(right.host, told_wrong + told_right)

    stored = endpoint.store.logs()
    assert account["exported"] == events_of(stored, expected_right) == told_right
    assert account["dropped"] == {"unauthorized": told_wrong}
    assert {row["session_id"] for row in endpoint.store.rows()} <= {"s-right", None}
    assert harness.report(right.host)["exporter"]["breaker"]["state"] == "CLOSED"
    assert set(telemetry_posts(endpoint)) == {200, 401}


# --- circuit breaker ------------------------------------------------------------------------


def test_breaker_opens_after_failing_batches_then_a_half_open_probe_closes_it(
    endpoint: LocalEndpoint, token: str, harness: Harness
) -> None:
    endpoint.set_fault(Fault(mode="status", status=500))
    settings = fast_settings(breaker_threshold=2, max_retries=0)
    connection = open_connection(endpoint.url, bearer(token), settings)
    host = connection.host
    expected: Expected = {}

    def tell_one_batch(size: int = 1) -> None:
        """Tell `size` connection logs and wait until the host has settled all of them."""
        for _ in range(size):
            sid = f"b{len(expected)}"
            assert connection.tell(ev.ConnectionOpened(session_id=sid))
            expected[("connection", sid, None)] = 1
        harness.settled(host, len(expected))

    tell_one_batch()
    tell_one_batch()
    assert harness.report(host)["exporter"]["breaker"]["state"] == "OPEN"
    tell_one_batch(size=3)
    account = harness.report(host)["accounting"]
    assert account["dropped"] == {"export_failed": 2, "breaker_open": 3}
    assert telemetry_posts(endpoint) == {500: 2}  # nothing reached the server while open

    endpoint.set_fault(None)

    def closed_again() -> bool:
        tell_one_batch()
        state: str = harness.report(host)["exporter"]["breaker"]["state"]
        return state == "CLOSED"

    harness.wait_until(closed_again, timeout_s=5.0, what="the breaker to close again")
    report = harness.report(host)
    transitions = report["exporter"]["breaker"]["transitions"]
    assert transitions["CLOSED->OPEN"] == 1
    assert transitions["OPEN->HALF_OPEN"] == 1
    assert transitions["HALF_OPEN->CLOSED"] == 1
    account = report["accounting"]
    assert account["balanced"]
    assert account["exported"] == events_of(endpoint.store.logs(), expected) > 0
    assert account["told"] == account["exported"] + sum(account["dropped"].values())


# --- shutdown -------------------------------------------------------------------------------


def test_shutdown_returns_within_its_timeout_while_the_endpoint_hangs(
    endpoint: LocalEndpoint, token: str, harness: Harness
) -> None:
    endpoint.set_fault(Fault(mode="hang"))
    settings = fast_settings(read_timeout_ms=500)
    connection = open_connection(endpoint.url, bearer(token), settings)
    told = sum(tell_session(connection, "s-hang").values())
    harness.wait_until(
        lambda: (
            harness.report(connection.host)["aggregator"]["pending_detail"]["in_export_events"]
            == told
        ),
        what="every event to be with the exporter",
    )

    started = time.monotonic()
    clean = actors.shutdown(1.0)
    took_s = time.monotonic() - started

    assert took_s < 1.5
    assert clean is False
    account = actors.dump_state()["hosts"][connection.host]["accounting"]
    assert account["balanced"]
    assert (account["told"], account["exported"], account["pending"]) == (told, 0, 0)
    assert account["dropped"] == {"shutdown_timeout": told}
    assert endpoint.store.count() == 0


def test_events_told_after_close_are_counted_as_dropped_after_close(
    endpoint: LocalEndpoint, token: str
) -> None:
    connection = open_connection(endpoint.url, bearer(token))
    expected = tell_session(connection, "s-closed")
    told = sum(expected.values())
    connection.close()

    assert connection.tell(ev.ConnectionOpened(session_id="s-too-late")) is False
    assert actors.shutdown(2.0) is True

    account = actors.dump_state()["hosts"][connection.host]["accounting"]
    assert account["balanced"] and account["complete"]
    assert account["told"] == told + 1
    assert account["dropped"] == {"after_close": 1}
    assert account["exported"] == events_of(endpoint.store.logs(), expected) == told


def test_many_threads_on_three_hosts_store_exactly_what_each_host_exported(
    make_endpoint: Callable[..., LocalEndpoint], token: str, harness: Harness
) -> None:
    endpoints = [make_endpoint() for _ in range(3)]
    hosts = [endpoint.host_port for endpoint in endpoints]
    threads_n, rounds = 16, 3
    expected: dict[str, Expected] = {host: {} for host in hosts}
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def driver_thread(index: int) -> None:
        try:
            start.wait(timeout=5.0)
            for round_ in range(rounds):
                endpoint = endpoints[(index + round_) % len(endpoints)]
                connection = open_connection(endpoint.url, bearer(token))
                mine = tell_session(connection, f"t{index}-r{round_}", statements=1)
                connection.close()
                with lock:
                    expected[connection.host].update(mine)
        except BaseException as error:
            with lock:
                errors.append(error)

    workers = [
        threading.Thread(target=driver_thread, args=(i,), name=f"driver-{i}")
        for i in range(threads_n)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10.0)
    assert not [w.name for w in workers if w.is_alive()]
    assert errors == []

    assert actors.shutdown(3.0) is True
    report = actors.dump_state()["hosts"]

    exported_total = 0
    for endpoint, host in zip(endpoints, hosts, strict=True):
        account = report[host]["accounting"]
        assert account["balanced"] and account["complete"], account
        assert account["told"] == sum(expected[host].values())
        assert account["pending"] == 0
        assert account["exported"] == events_of(endpoint.store.logs(), expected[host])
        assert set(account["dropped"]) <= {"flag_unknown"}, account["dropped"]
        exported_total += account["exported"]
    assert exported_total > 0
    harness.wait_until(lambda: not harness.threads(), 3.0, "every telemetry thread to end")


# --- file sink ------------------------------------------------------------------------------


def test_file_sink_writes_exactly_the_exported_logs_as_json_lines(
    tmp_path: Any, token: str, harness: Harness
) -> None:
    path = tmp_path / "telemetry.jsonl"
    settings = fast_settings(sink="file", file_path=str(path))
    connection = open_connection("https://file-sink.example.invalid", bearer(token), settings)
    expected = tell_session(connection, "s-file")
    told = sum(expected.values())

    account = harness.settled(connection.host, told)
    connection.close()
    assert actors.shutdown(2.0) is True

    lines = path.read_text(encoding="utf-8").splitlines()
    logs = [json.loads(line) for line in lines]
    # The same oracle as the HTTP endpoint: the lines are valid protoLogs entries.
    body = json.dumps({"uploadTime": int(time.time() * 1000), "items": [], "protoLogs": lines})
    assert validate_request(body.encode()) == logs
    assert account["dropped"] == {}
    assert account["exported"] == events_of(logs, expected) == told
    assert dict(Counter(derive_kind(log) for log in logs)) == KINDS_PER_SESSION
