"""Every way the endpoint can misbehave, against a threaded driver workload, with exact accounts.

Each case runs the same workload: 4 driver threads, each opening 2 connections that run real
sqlite3 queries (results fetched in chunks), one failing statement and one auth error, telling
`messages.events` about all of it. The host's tree lingers after the last close (a long
`telemetry.idle_linger_ms`), so the test reads the exporter's state with no connection held open.
Then `actors.shutdown` drains, and the final report must account for every event told:

    told == exported + dropped by reason + pending   (pending is 0 after a drain)

where `exported` is checked twice against the endpoint itself: its stored logs stand for exactly
that many told events, and it stored exactly the sum of the finished generations' exported logs.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from _support import (
    DRIVER,
    TOKEN,
    Identity,
    assert_balanced,
    bearer,
    closed_port,
    events_of,
    fast_settings,
    host_report,
    wait_settled,
    wait_until,
)

import actors
from actors._export import outbox
from actors.tools.local_endpoint import Fault, LocalEndpoint
from messages import events as ev
from messages.enums import ExecutionResultFormat, StatementType

THREADS = 4
CONNECTIONS_PER_THREAD = 2
STATEMENTS = 3
JOIN_TIMEOUT_S = 10.0

RETRYABLE_DROPS = frozenset({"export_failed", "breaker_open", "shutdown_timeout", "queue_full"})


def matrix_settings(**overrides: Any) -> actors.TelemetrySettings:
    """The brief's short settings; a low breaker threshold so five-odd batches can open it.

    Connections with the same credentials share batches, so small batches give the workload
    the several batches (and failures) a fault needs to show retries and the breaker.
    """
    values: dict[str, Any] = {
        "batch_size": 2,
        "idle_linger_ms": 20_000,  # the tree stays after the last close until the test reads it
        "breaker_threshold": 2,
        "rate_limit_per_s": 500.0,
        "rate_limit_burst": 100,
    }
    values.update(overrides)
    return fast_settings(**values)


# Batches waiting together share a body. A body this small holds about one batch of the matrix's
# two logs (at most ~1.2 kB each), so the workload still makes the many requests (and failures) a
# fault needs to show retries, the breaker and the rate limit.
ABOUT_ONE_BATCH_BYTES = 2_500


@pytest.fixture(autouse=True)
def about_one_batch_per_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies of about one batch each, for every test of the matrix."""
    monkeypatch.setattr(outbox, "MAX_BODY_BYTES", ABOUT_ONE_BATCH_BYTES)


# --- the driver workload ------------------------------------------------------------------------


class _NoTelemetry:
    """Stands in for a telemetry connection in the uninstrumented baseline run."""

    host = "baseline"

    def tell(self, event: object) -> bool:
        return True

    def close(self) -> None:
        pass


@attrs.define
class ThreadOutcome:
    """What one driver thread did: its query results, what it told, what went wrong."""

    results: list[Any] = attrs.Factory(list)
    told: int = 0
    refused: int = 0
    expected: dict[Identity, int] = attrs.Factory(dict)
    error: BaseException | None = None


def drive(index: int, open_telemetry: Callable[[], Any], out: ThreadOutcome) -> None:
    """One driver thread: connections, sqlite3 statements fetched in chunks, errors, close."""

    def tell(telemetry: Any, identity: Identity, event: object) -> None:
        out.told += 1
        if not telemetry.tell(event):
            out.refused += 1
        out.expected[identity] = out.expected.get(identity, 0) + 1

    for c in range(CONNECTIONS_PER_THREAD):
        sid = f"s{index}.{c}"
        started = time.perf_counter()
        db = sqlite3.connect(":memory:")
        telemetry = open_telemetry()
        opened_ms = (time.perf_counter() - started) * 1000
        tell(
            telemetry,
            ("connection", sid, None),
            ev.ConnectionOpened(session_id=sid, auth_type="pat", latency_ms=opened_ms),
        )
        db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}.{sid}") for i in range(10)])
        for k in range(STATEMENTS):
            stid = f"{sid}/q{k}"
            me: Identity = ("statement", sid, stid)
            tell(
                telemetry,
                me,
                ev.StatementStarted(
                    statement_id=stid, session_id=sid, statement_type=StatementType.QUERY
                ),
            )
            t0 = time.perf_counter()
            cursor = db.execute("SELECT k, v FROM t WHERE k >= ? ORDER BY k", (k * 3,))
            ready_ms = (time.perf_counter() - t0) * 1000
            tell(telemetry, me, ev.OperationPolled(statement_id=stid, latency_ms=ready_ms))
            rows: list[Any] = []
            chunk = 0
            while True:
                t1 = time.perf_counter()
                part = cursor.fetchmany(4)
                if not part:
                    break
                rows.extend(part)
                tell(
                    telemetry,
                    me,
                    ev.ChunkDownloaded(
                        statement_id=stid,
                        chunk_index=chunk,
                        latency_ms=(time.perf_counter() - t1) * 1000,
                        size_bytes=sum(len(v) for _, v in part),
                    ),
                )
                chunk += 1
            tell(
                telemetry,
                me,
                ev.StatementCompleted(
                    statement_id=stid,
                    execution_result=ExecutionResultFormat.INLINE_ARROW,
                    result_ready_latency_ms=ready_ms,
                    operation_latency_ms=(time.perf_counter() - t0) * 1000,
                    total_chunks_present=chunk,
                ),
            )
            out.results.append(rows)
        failed = f"{sid}/bad"
        tell(
            telemetry,
            ("error", sid, failed),
            ev.StatementStarted(
                statement_id=failed, session_id=sid, statement_type=StatementType.SQL
            ),
        )
        try:
            db.execute("SELEC k FROM t")
        except sqlite3.Error as exc:  # the driver's own error, told and then handled as usual
            out.results.append(("error", type(exc).__name__, str(exc)))
            tell(
                telemetry,
                ("error", sid, failed),
                ev.ErrorOccurred(
                    error_name=type(exc).__name__,
                    message=str(exc),
                    statement_id=failed,
                    session_id=sid,
                    retryable=False,
                ),
            )
        tell(
            telemetry,
            ("error", sid, None),
            ev.ErrorOccurred(
                error_name="PermissionError",
                message="token expired",
                session_id=sid,
                http_status=403,
            ),
        )
        tell(telemetry, ("close", sid, None), ev.ConnectionClosed(session_id=sid, latency_ms=0.5))
        telemetry.close()
        db.close()


def run_threads(open_telemetry: Callable[[], Any]) -> list[ThreadOutcome]:
    """Run the workload on `THREADS` threads; every thread must finish within the bound."""
    outcomes = [ThreadOutcome() for _ in range(THREADS)]

    def body(index: int) -> None:
        try:
            drive(index, open_telemetry, outcomes[index])
        except BaseException as exc:  # anything reaching a driver thread is a failure
            outcomes[index].error = exc

    threads = [threading.Thread(target=body, args=(i,), name=f"driver-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not [t.name for t in threads if t.is_alive()], "a driver thread never finished"
    return outcomes


@functools.cache
def baseline_results() -> tuple[Any, ...]:
    """The workload's query results without any telemetry."""
    return tuple(repr(o.results) for o in run_threads(_NoTelemetry))


# --- the matrix ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Case:
    """One endpoint behaviour and what the accounts must show for it."""

    name: str
    fault: Fault | None = None
    settings: dict[str, Any] = attrs.field(factory=dict)
    auth_token: str = TOKEN  # the connections' token (the endpoint wants TOKEN)
    refused: bool = False  # nobody listens: connection refused
    wait: str = "settled"  # or "attempted": shut down while requests are still failing
    everything_exported: bool = False
    nothing_exported: bool = False
    required_drops: frozenset[str] = frozenset()
    allowed_drops: frozenset[str] = frozenset()
    retries: bool | None = None  # True: some were retried; False: none was
    breaker_opens: bool | None = None
    answered_every_attempt: bool = True  # the endpoint answered (or reset) every attempt


def terminal(name: str, status: int, reason: str, *, credential: bool) -> Case:
    return Case(
        name=name,
        fault=Fault(mode="status", status=status),
        nothing_exported=True,
        required_drops=frozenset({reason}),
        # a bad token says nothing about the host, so it never opens the breaker
        allowed_drops=frozenset({reason} if credential else {reason, "breaker_open"}),
        retries=False,
        breaker_opens=False if credential else None,
    )


def retryable(name: str, fault: Fault, **options: Any) -> Case:
    options.setdefault("required_drops", frozenset({"export_failed"}))
    options.setdefault("allowed_drops", RETRYABLE_DROPS)
    options.setdefault("retries", True)
    options.setdefault("breaker_opens", True)
    options.setdefault("nothing_exported", True)
    return Case(name=name, fault=fault, **options)


CASES = [
    Case(name="healthy", fault=Fault(mode="none"), everything_exported=True, retries=False),
    Case(
        name="partial",
        fault=Fault(mode="partial", k=1),
        required_drops=frozenset({"partial_rejected"}),
        allowed_drops=frozenset({"partial_rejected"}),
        retries=False,
        breaker_opens=False,
    ),
    terminal("status_400", 400, "rejected", credential=False),
    terminal("status_401", 401, "unauthorized", credential=True),
    terminal("status_403", 403, "unauthorized", credential=True),
    terminal("status_404", 404, "rejected", credential=False),
    Case(
        name="wrong_token",
        auth_token="not-the-endpoint-token",
        nothing_exported=True,
        required_drops=frozenset({"unauthorized"}),
        allowed_drops=frozenset({"unauthorized"}),
        retries=False,
        breaker_opens=False,
    ),
    retryable("status_429", Fault(mode="status", status=429)),
    Case(
        name="retry_after_once",
        fault=Fault(mode="retry_after", retry_after_s=1, times=1),
        everything_exported=True,
        retries=True,
        breaker_opens=False,
    ),
    Case(
        name="retry_after_capped_to_zero",
        fault=Fault(mode="retry_after", retry_after_s=30, times=2),
        settings={"retry_after_max_s": 0},
        everything_exported=True,
        retries=True,
        breaker_opens=False,
    ),
    retryable("status_500", Fault(mode="status", status=500)),
    retryable("status_502", Fault(mode="status", status=502)),
    retryable("status_503", Fault(mode="status", status=503)),
    retryable("status_504", Fault(mode="status", status=504)),
    Case(
        name="slow_past_read_timeout_twice",
        fault=Fault(mode="slow", delay_s=0.5, times=2),
        everything_exported=True,
        retries=True,
        breaker_opens=False,
        answered_every_attempt=False,
    ),
    retryable(
        "hang",
        Fault(mode="hang"),
        wait="attempted",
        required_drops=frozenset({"shutdown_timeout"}),
        breaker_opens=None,
        answered_every_attempt=False,
    ),
    retryable(
        "connection_refused",
        None,
        refused=True,
        settings={"force_enable": True},
        answered_every_attempt=False,
    ),
    retryable("drop_mid_body", Fault(mode="drop")),
    retryable("malformed_json_reply", Fault(mode="malformed")),
    Case(
        name="flap",
        fault=Fault(mode="flap", period=2),
        allowed_drops=RETRYABLE_DROPS,
        retries=True,
    ),
]


@pytest.fixture
def endpoints() -> Iterator[list[LocalEndpoint]]:
    """Endpoints the test starts; closed (releasing hanging handlers) after it."""
    started: list[LocalEndpoint] = []
    yield started
    for endpoint in started:
        endpoint.close()


def exporter_state(host: str) -> dict[str, Any] | None:
    """The exporter's snapshot, or None while it is too busy in a request to answer."""
    found: dict[str, Any] = host_report(host, timeout_s=0.5)["exporter"]
    return found if "stats" in found else None


def _posts(endpoint: LocalEndpoint) -> int:
    return sum(endpoint.stats()["requests"].get("/telemetry-ext", {}).values())


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_event_told_under_endpoint_fault_is_exported_or_dropped_by_reason(
    case: Case, endpoints: list[LocalEndpoint]
) -> None:
    endpoint: LocalEndpoint | None = None
    if case.refused:
        url = f"http://127.0.0.1:{closed_port()}"
    else:
        endpoint = LocalEndpoint(token=TOKEN, fault=case.fault, stop_timeout_s=2.0).start()
        endpoints.append(endpoint)
        url = endpoint.url
    settings = matrix_settings(**case.settings)

    def open_telemetry() -> actors.Connection:
        return actors.connect(url, driver=DRIVER, auth=bearer(case.auth_token), settings=settings)

    host = url.split("://", 1)[1]
    started_s = time.monotonic()
    outcomes = run_threads(open_telemetry)

    errors = [o.error for o in outcomes if o.error is not None]
    assert not errors, f"an exception reached a driver thread: {errors!r}"
    assert tuple(repr(o.results) for o in outcomes) == baseline_results()
    assert sum(o.refused for o in outcomes) == 0
    told = sum(o.told for o in outcomes)
    expected: dict[Identity, int] = {}
    for outcome in outcomes:
        expected.update(outcome.expected)

    exporter: dict[str, Any] | None = None
    if case.wait == "settled":
        wait_settled(host, told, timeout_s=8.0)
        exporter = wait_until(lambda: exporter_state(host), what="the exporter's state")
    else:  # a hanging endpoint: shut down while requests hang. The exporter works through
        # one hanging request per message, so it answers no state dump meanwhile.
        assert endpoint is not None
        wait_until(lambda: endpoint.stats()["faults_injected"] >= 2, what="two hung requests")
    elapsed_s = time.monotonic() - started_s
    actors.shutdown(3.0)

    report = host_report(host)
    accounting = report["accounting"]
    assert_balanced(accounting, told)
    assert accounting["pending"] == 0, accounting
    assert not report["live"]
    stored = endpoint.store.logs() if endpoint is not None else []
    exported_logs = sum(g["exported_logs"] for g in report["finished_generations"])
    assert len(stored) == exported_logs
    assert events_of(stored, expected) == accounting["exported"]

    dropped: dict[str, int] = accounting["dropped"]
    print(f"\nfault {case.name}: told {told} exported {accounting['exported']} dropped {dropped}")
    assert case.required_drops <= set(dropped), dropped
    assert set(dropped) <= case.required_drops | case.allowed_drops, dropped
    if case.everything_exported:
        assert accounting["exported"] == told and dropped == {}
    if case.nothing_exported:
        assert accounting["exported"] == 0 and stored == [], accounting
    if case.name == "retry_after_once":
        # the one 429 said "Retry-After: 1": that batch cannot have settled sooner
        assert elapsed_s >= 0.9, elapsed_s

    if exporter is None:  # the exporter's final state, if it reported before the deadline
        finals = [g["exporter"] for g in report["finished_generations"] if "exporter" in g]
        exporter = finals[-1] if finals else None
    if exporter is not None:
        check_exporter(case, exporter, dropped, settings, endpoint)


def check_exporter(
    case: Case,
    exporter: dict[str, Any],
    dropped: dict[str, int],
    settings: actors.TelemetrySettings,
    endpoint: LocalEndpoint | None,
) -> None:
    """Retries, breaker transitions and attempts as the case configures them."""
    stats: dict[str, int] = exporter["stats"]
    transitions: dict[str, int] = exporter["breaker"]["transitions"]
    if case.retries is True:
        assert stats.get("retries_scheduled", 0) > 0, exporter
    elif case.retries is False:
        assert stats.get("retries_scheduled", 0) == 0, exporter
    if case.breaker_opens is True:
        assert transitions.get("CLOSED->OPEN", 0) >= 1, exporter
    elif case.breaker_opens is False:
        assert transitions == {} and "breaker_open" not in dropped, exporter
    if case.wait == "settled":
        # never more attempts per batch than the first plus max_retries
        attempts_bound = stats.get("batches_settled", 0) * (settings.max_retries + 1)
        assert stats.get("attempts", 0) <= attempts_bound, exporter
    if endpoint is not None and case.answered_every_attempt:
        assert _posts(endpoint) == stats.get("attempts", 0), (endpoint.stats(), exporter)


# --- retries, breaker and rate limit, as configured ---------------------------------------------


def _workload_on(endpoint: LocalEndpoint, settings: actors.TelemetrySettings) -> tuple[str, int]:
    """Run the threaded workload against `endpoint`; return (host, told)."""

    def open_telemetry() -> actors.Connection:
        return actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)

    outcomes = run_threads(open_telemetry)
    assert not [o.error for o in outcomes if o.error is not None]
    return endpoint.host_port, sum(o.told for o in outcomes)


def test_each_failing_batch_is_sent_exactly_once_plus_max_retries_when_the_breaker_is_off(
    endpoints: list[LocalEndpoint],
) -> None:
    endpoint = LocalEndpoint(token=TOKEN, fault=Fault(mode="status", status=500)).start()
    endpoints.append(endpoint)
    settings = matrix_settings(breaker_enabled=False, max_retries=2)
    host, told = _workload_on(endpoint, settings)

    wait_settled(host, told, timeout_s=8.0)
    exporter = wait_until(lambda: exporter_state(host), what="the exporter's state")
    actors.shutdown(3.0)

    batches = exporter["stats"]["batches_settled"]
    assert _posts(endpoint) == exporter["stats"]["attempts"]
    # batches that waited together share a request: every batch went out three times
    batch_attempts = exporter["stats"]["attempts"] + exporter["stats"].get("merged_batches", 0)
    assert batch_attempts == 3 * batches
    assert exporter["stats"]["retries_scheduled"] == 2 * batches
    assert exporter["breaker"]["transitions"] == {}
    accounting = host_report(host)["accounting"]
    assert_balanced(accounting, told)
    assert accounting["dropped"] == {"export_failed": told}


def test_breaker_opens_after_threshold_failures_probes_after_open_s_and_closes_on_recovery(
    endpoints: list[LocalEndpoint],
) -> None:
    # two failing batches open it; after breaker_open_s one probe, then a second success closes
    endpoint = LocalEndpoint(token=TOKEN, fault=Fault(mode="status", status=503, times=2)).start()
    endpoints.append(endpoint)
    settings = matrix_settings(
        breaker_threshold=2, breaker_success_threshold=2, max_retries=0, force_enable=True
    )
    connection = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
    told = 0
    pace = threading.Event()
    deadline_s = time.monotonic() + 5.0
    closed_again = False
    while not closed_again:  # one lone error log per flush interval, until the breaker recovers
        assert time.monotonic() < deadline_s, host_report(connection.host)["exporter"]
        assert connection.tell(ev.ErrorOccurred(error_name="Boom", session_id=f"s{told}"))
        told += 1
        pace.wait(0.06)
        state = exporter_state(connection.host)
        closed_again = (
            bool(state) and state["breaker"]["transitions"].get("HALF_OPEN->CLOSED", 0) >= 1
        )
    wait_settled(connection.host, told)
    exporter = wait_until(lambda: exporter_state(connection.host), what="the exporter's state")
    transitions = exporter["breaker"]["transitions"]
    connection.close()
    actors.shutdown(3.0)

    assert transitions == {"CLOSED->OPEN": 1, "OPEN->HALF_OPEN": 1, "HALF_OPEN->CLOSED": 1}
    accounting = host_report(connection.host)["accounting"]
    assert_balanced(accounting, told)
    dropped = accounting["dropped"]
    assert dropped["export_failed"] >= 2 and dropped["breaker_open"] >= 1, dropped
    assert set(dropped) == {"export_failed", "breaker_open"}
    assert endpoint.store.count() == accounting["exported"] > 0


def test_rate_limit_paces_requests_to_burst_plus_rate_and_loses_nothing(
    endpoints: list[LocalEndpoint],
) -> None:
    endpoint = LocalEndpoint(token=TOKEN).start()
    endpoints.append(endpoint)
    rate_per_s, burst = 10.0, 2
    settings = matrix_settings(rate_limit_per_s=rate_per_s, rate_limit_burst=burst)
    started_s = time.monotonic()
    host, told = _workload_on(endpoint, settings)

    wait_settled(host, told, timeout_s=8.0)
    elapsed_s = time.monotonic() - started_s
    exporter = wait_until(lambda: exporter_state(host), what="the exporter's state")
    actors.shutdown(3.0)

    posts = _posts(endpoint)
    assert posts > burst + 2, "the workload must need more requests than the burst"
    # the bucket starts full: `burst` at once, then one every 1/rate seconds, never faster
    assert posts <= burst + rate_per_s * elapsed_s + 1
    assert elapsed_s >= (posts - burst - 1) / rate_per_s
    assert exporter["stats"]["rate_limited"] >= 1 and exporter["rate_limit"]["denied"] >= 1
    accounting = host_report(host)["accounting"]
    assert_balanced(accounting, told)
    assert accounting["exported"] == told and accounting["dropped"] == {}


def _tree_threads() -> list[str]:
    markers = ("HostSupervisor", "FeatureFlagActor", "AggregatorActor", "ExporterActor")
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("telemetry-timer") or any(m in t.name for m in markers)
    ]


def test_no_request_starts_after_the_drain_deadline_even_with_batches_backed_up_behind_a_hang(
    endpoints: list[LocalEndpoint],
) -> None:
    # Every request hangs until the read timeout, so batches queue up in the exporter's inbox
    # faster than it can try them. At the drain deadline the exporter must stop sending: the
    # batches it still holds are accounted as shutdown_timeout, and sending them later would
    # both outlive the tree and deliver logs the accounts call dropped.
    endpoint = LocalEndpoint(token=TOKEN, fault=Fault(mode="hang"), stop_timeout_s=2.0).start()
    endpoints.append(endpoint)
    settings = matrix_settings(
        force_enable=True, shutdown_timeout_ms=500, max_retries=0, breaker_enabled=False
    )
    connections = [
        actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
        for _ in range(8)
    ]
    host = connections[0].host
    told = 0
    pace = threading.Event()
    for round_ in range(12):  # one lone error log per connection per flush interval
        for i, connection in enumerate(connections):
            assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}.{round_}"))
            told += 1
        pace.wait(0.05)
    for connection in connections:
        connection.close()
    actors.shutdown(3.0)
    received_at_shutdown = endpoint.stats()["bytes_received"]

    # one request may still be in flight (bounded by the read timeout), then nothing
    wait_until(lambda: not _tree_threads(), timeout_s=1.0, what=f"tree threads {_tree_threads()}")
    assert endpoint.stats()["bytes_received"] == received_at_shutdown
    accounting = host_report(host)["accounting"]
    assert_balanced(accounting, told)
    assert accounting["exported"] == 0 and "shutdown_timeout" in accounting["dropped"]
