"""ExporterActor as a real actor: own credentials per batch, retries, breaker, rate limit, drain.

A `FakeTransport` answers scripted outcomes, a `ManualTimer` records retries and pumps (the test
fires them), a `FakeClock` drives the breaker and the rate limiter, and a `Recorder` plays the
aggregator that receives `BatchSettled`.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pykka
import pytest

from actors._aggregate.statements import build_log
from actors._export import outbox
from actors._export.http import HttpOutcome
from actors._runtime.timer import Timer
from actors.exporter import ExporterActor
from messages.commands import (
    BatchSettled,
    ConnectionContext,
    Drain,
    Drained,
    DumpState,
    ExportBatch,
    Flush,
    Pump,
    RetryBatch,
)
from messages.config import TelemetrySettings
from messages.enums import DriverMode
from messages.privacy import LogKind
from messages.records import (
    DriverConnectionParams,
    ExportResponse,
    FrontendLog,
    FrontendLogEntry,
    SqlDriverLog,
    SqlExecutionEvent,
    SystemConfiguration,
)
from messages.snapshots import to_json
from messages.wire import encode_export_response

if TYPE_CHECKING:
    from conftest import FakeClock, FakeTransport, ManualTimer, Recording

ASK_S = 2.0
RNG_SEED = 7
BASE_URL = "https://host.example.com"
SYSTEM = SystemConfiguration(
    driver_name="TestDriver",
    driver_version="1.0.0",
    client_app_name="secret-app",
    locale_name="en_US",
    process_name="worker.py",
)


def export_ok(accepted: int) -> HttpOutcome:
    answer = ExportResponse(num_proto_success=accepted)
    return HttpOutcome(status=200, body=encode_export_response(answer))


def status(code: int, retry_after_s: float | None = None) -> HttpOutcome:
    return HttpOutcome(status=code, body=b'{"error": "x"}', retry_after_s=retry_after_s)


def bearer(token: str) -> Callable[[], Mapping[str, str]]:
    return lambda: {"Authorization": f"Bearer {token}"}


def make_context(
    connection_id: int = 1,
    auth: Callable[[], Mapping[str, str]] | None = None,
    workspace_id: int | None = None,
) -> ConnectionContext:
    return ConnectionContext(
        connection_id=connection_id,
        host="host.example.com",
        auth=auth,
        user_agent="TestDriver/1.0.0",
        system_configuration=SYSTEM,
        workspace_id=workspace_id,
    )


AUTHED = make_context(auth=bearer("token-1"))


@attrs.define
class Harness:
    """A started exporter with its fakes; `send` builds and tells a batch."""

    ref: pykka.ActorRef[Any]
    aggregator: Recording
    transport: FakeTransport
    timer: Any
    clock: Any
    next_id: int = 0

    def send(
        self,
        context: ConnectionContext = AUTHED,
        counts: tuple[int, ...] = (1,),
        alone: bool = True,
    ) -> ExportBatch:
        """Tell a batch; `alone`: wait until the exporter has sent it (or queued it behind the
        rate limit), so it does not share a body with the next one."""
        self.next_id += 1
        logs = tuple(
            build_log(
                context,
                LogKind.CONNECTION,
                SqlDriverLog(
                    session_id=f"s-{self.next_id}-{i}",
                    system_configuration=SYSTEM,
                    driver_connection_params=DriverConnectionParams(
                        http_path="/sql/1.0/warehouses/w", mode=DriverMode.THRIFT
                    ),
                    auth_type="pat",
                    operation_latency_ms=5,
                ),
                1_755_000_000_000,
            )
            for i in range(len(counts))
        )
        batch = ExportBatch(
            batch_id=self.next_id,
            context=context,
            logs=logs,
            event_counts=counts,
            reply_to=self.aggregator.ref,
        )
        self.ref.tell(batch)
        if alone:  # the first ask follows the batch, the second the send it tells itself
            self.ref.ask(DumpState(), timeout=ASK_S)
            self.ref.ask(DumpState(), timeout=ASK_S)
        return batch

    def snapshot(self) -> dict[str, Any]:
        """The exporter's state as `dump_state()` shows it (its records turned into JSON)."""
        state: dict[str, Any] = to_json(self.ref.ask(DumpState(), timeout=ASK_S))
        json.dumps(state)
        return state

    def settled(self, count: int = 1) -> list[BatchSettled]:
        return self.aggregator.wait_for(BatchSettled, count=count)

    def settled_now(self) -> list[BatchSettled]:
        """`BatchSettled`s so far, after a barrier on the exporter and the recorder."""
        self.snapshot()
        self.aggregator.barrier()
        return self.aggregator.of_type(BatchSettled)

    def breaker(self) -> dict[str, Any]:
        breaker: dict[str, Any] = self.snapshot()["breaker"]
        return breaker


@pytest.fixture
def start(
    recorder: Callable[[], Recording],
    transport: FakeTransport,
    manual_timer: ManualTimer,
    clock: FakeClock,
) -> Callable[..., Harness]:
    """Start an exporter with small settings (override any as keywords)."""

    def start_(timer: Any = None, use_clock: Any = None, **overrides: Any) -> Harness:
        options: dict[str, Any] = {
            "max_retries": 3,
            "retry_delay_ms": 10,
            "retry_max_delay_ms": 100,
            "breaker_threshold": 3,
            "breaker_open_s": 30,
            "breaker_success_threshold": 2,
            "rate_limit_burst": 100,
            "rate_limit_per_s": 10.0,
        }
        options.update(overrides)
        used_timer = manual_timer if timer is None else timer
        used_clock = clock if use_clock is None else use_clock
        ref = ExporterActor.start(
            base_url=BASE_URL,
            settings=TelemetrySettings(**options),
            transport=transport,
            timer=used_timer,
            clock=used_clock,
            rng=random.Random(RNG_SEED),
        )
        return Harness(
            ref=ref,
            aggregator=recorder(),
            transport=transport,
            timer=used_timer,
            clock=used_clock,
        )

    return start_


# --- where and how it posts ---------------------------------------------------------------------


def test_each_batch_is_posted_with_its_own_connections_authorization(
    start: Callable[..., Harness],
) -> None:
    exporter = start()
    first = make_context(1, bearer("token-first"), workspace_id=12345)
    second = make_context(2, bearer("token-second"))
    exporter.send(first, counts=(1, 1))
    exporter.send(second, counts=(1,))
    exporter.send(first, counts=(1,))

    requests = exporter.transport.wait_requests(3)
    expected = [("token-first", 2), ("token-second", 1), ("token-first", 1)]
    for request, (token, n_logs) in zip(requests, expected, strict=True):
        assert request.method == "POST"
        assert request.url == BASE_URL + "/telemetry-ext"
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.headers["User-Agent"] == "TestDriver/1.0.0"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Accept"] == "application/json"
        assert len(request.proto_logs()) == n_logs
    assert requests[0].headers["x-databricks-org-id"] == "12345"
    assert "x-databricks-org-id" not in requests[1].headers
    assert [log["entry"]["sql_driver_log"]["session_id"] for log in requests[1].proto_logs()] == [
        "s-2-0"
    ]
    assert all(log["workspace_id"] == 12345 for log in requests[0].proto_logs())


def test_request_body_is_a_telemetry_request_of_json_strings(
    start: Callable[..., Harness],
) -> None:
    exporter = start()
    exporter.send(counts=(1, 1))

    (request,) = exporter.transport.wait_requests(1)
    body = request.json()
    assert set(body) == {"uploadTime", "items", "protoLogs"}
    assert body["items"] == []
    assert isinstance(body["uploadTime"], int)
    assert body["uploadTime"] > 1_700_000_000_000
    assert all(isinstance(text, str) for text in body["protoLogs"])


@pytest.mark.parametrize(
    "auth",
    [None, lambda: {}, lambda: 1 / 0],
    ids=["no-auth", "empty-headers", "provider-raises"],
)
def test_without_usable_auth_it_posts_stripped_logs_to_telemetry_unauth(
    start: Callable[..., Harness], auth: Callable[[], Mapping[str, str]] | None
) -> None:
    exporter = start()
    exporter.send(make_context(auth=auth, workspace_id=999), counts=(1,))

    (request,) = exporter.transport.wait_requests(1)
    assert request.url == BASE_URL + "/telemetry-unauth"
    assert "Authorization" not in request.headers
    assert "x-databricks-org-id" not in request.headers
    (log,) = request.proto_logs()
    assert "workspace_id" not in log
    entry = log["entry"]["sql_driver_log"]
    for field in ("session_id", "sql_statement_id", "driver_connection_params", "auth_type"):
        assert field not in entry
    system = entry["system_configuration"]
    assert system["driver_name"] == "TestDriver"
    for field in ("client_app_name", "locale_name", "process_name"):
        assert field not in system
    assert exporter.settled()[0].exported_events == 1


# --- outcomes -----------------------------------------------------------------------------------


def test_success_settles_every_event_of_the_batch_as_exported(
    start: Callable[..., Harness],
) -> None:
    exporter = start()
    batch = exporter.send(counts=(3, 1, 2))

    (settled,) = exporter.settled()
    assert settled == BatchSettled(
        batch_id=batch.batch_id, exported_events=6, exported_logs=3, dropped={}
    )
    state = exporter.snapshot()
    assert state["in_flight_batches"] == 0
    assert state["responses"] == {"200": 1}


@pytest.mark.parametrize(
    ("accepted", "exported_logs", "exported_events", "rejected"),
    [(1, 1, 2, 5), (0, 0, 0, 7), (10, 3, 7, 0), (-4, 0, 0, 7)],
)
def test_partial_acceptance_settles_the_rest_as_partial_rejected(
    start: Callable[..., Harness],
    accepted: int,
    exported_logs: int,
    exported_events: int,
    rejected: int,
) -> None:
    exporter = start()
    exporter.transport.answer(export_ok(accepted))
    exporter.send(counts=(2, 1, 4))

    (settled,) = exporter.settled()
    assert settled.exported_logs == exported_logs
    assert settled.exported_events == exported_events
    assert settled.dropped == ({"partial_rejected": rejected} if rejected else {})
    assert len(exporter.transport.requests) == 1


@pytest.mark.parametrize("code", [401, 403])
def test_credential_rejection_is_unauthorized_not_retried_and_leaves_the_breaker_alone(
    start: Callable[..., Harness], code: int
) -> None:
    exporter = start(breaker_threshold=2)
    exporter.transport.answer(status(code), status(code), status(code))
    for _ in range(3):
        exporter.send(counts=(2,))

    settled = exporter.settled(3)
    assert all(s.dropped == {"unauthorized": 2} for s in settled)
    assert len(exporter.transport.requests) == 3
    assert exporter.timer.pending(RetryBatch) == []
    breaker = exporter.breaker()
    assert (breaker["state"], breaker["consecutive_failures"]) == ("CLOSED", 0)


@pytest.mark.parametrize("code", [400, 404, 413])
def test_bad_request_is_rejected_and_not_retried(start: Callable[..., Harness], code: int) -> None:
    exporter = start()
    exporter.transport.answer(status(code))
    exporter.send(counts=(1, 1))

    (settled,) = exporter.settled()
    assert settled.dropped == {"rejected": 2}
    assert len(exporter.transport.requests) == 1
    assert exporter.timer.pending(RetryBatch) == []


def test_unavailable_then_ok_is_retried_after_a_backoff_then_exported(
    start: Callable[..., Harness],
) -> None:
    exporter = start(retry_delay_ms=10)
    exporter.transport.answer(status(503), export_ok(1))
    exporter.send()

    (retry,) = exporter.timer.wait_pending(RetryBatch)
    assert 0.005 <= retry.delay_s <= 0.015  # 10 ms +/- 50 % jitter
    assert exporter.settled_now() == []
    assert exporter.snapshot()["retrying_batches"] == 1
    exporter.timer.fire(RetryBatch)

    (settled,) = exporter.settled()
    assert settled.exported_events == 1
    assert len(exporter.transport.requests) == 2
    assert exporter.snapshot()["stats"]["retries_scheduled"] == 1


@pytest.mark.parametrize(("retry_after_s", "expected_s"), [(7.0, 7.0), (0.0, 0.0), (600.0, 30.0)])
def test_retry_after_is_honoured_up_to_its_cap(
    start: Callable[..., Harness], retry_after_s: float, expected_s: float
) -> None:
    exporter = start(retry_after_max_s=30)
    exporter.transport.answer(status(429, retry_after_s=retry_after_s), export_ok(1))
    exporter.send()

    (retry,) = exporter.timer.wait_pending(RetryBatch)
    assert retry.delay_s == expected_s
    exporter.timer.fire(RetryBatch)
    assert exporter.settled()[0].exported_events == 1


def test_retries_exhausted_settle_as_export_failed_after_doubling_backoffs(
    start: Callable[..., Harness],
) -> None:
    exporter = start(max_retries=2, retry_delay_ms=100, retry_max_delay_ms=10_000)
    exporter.transport.answer(status(503), HttpOutcome(status=None, error="ReadTimeoutError"))
    exporter.transport.answer(status(502))
    exporter.send(counts=(4,))

    exporter.timer.fire(RetryBatch)
    exporter.timer.fire(RetryBatch)
    (settled,) = exporter.settled()
    assert settled.dropped == {"export_failed": 4}
    assert len(exporter.transport.requests) == 3
    first, second = (s.delay_s for s in exporter.timer.scheduled(RetryBatch))
    # The exporter's RNG is seeded; jitter 0.5 scales each nominal delay by 0.5 + u.
    same = random.Random(RNG_SEED)
    assert first == pytest.approx(0.1 * (0.5 + same.random()))
    assert second == pytest.approx(0.2 * (0.5 + same.random()))
    assert exporter.snapshot()["last_error"] == "HTTP 502"


@pytest.mark.parametrize(
    "body",
    [b"<html>not json</html>", b"[]", b'{"numProtoSuccess": "2"}', b'{"errors": []}', b""],
)
def test_malformed_success_body_is_retried(start: Callable[..., Harness], body: bytes) -> None:
    exporter = start()
    exporter.transport.answer(HttpOutcome(status=200, body=body), export_ok(1))
    exporter.send()

    exporter.timer.fire(RetryBatch)
    (settled,) = exporter.settled()
    assert settled.exported_events == 1
    assert len(exporter.transport.requests) == 2


def test_unencodable_batch_is_settled_not_lost(start: Callable[..., Harness]) -> None:
    exporter = start()
    good = exporter.send()
    poisoned = FrontendLog(
        frontend_log_event_id="e-1",
        entry=FrontendLogEntry(
            sql_driver_log=SqlDriverLog(
                sql_operation=SqlExecutionEvent(execution_result="NOT_AN_ENUM")  # type: ignore[arg-type]
            )
        ),
    )
    exporter.ref.tell(
        ExportBatch(
            batch_id=99,
            context=AUTHED,
            logs=(poisoned,),
            event_counts=(3,),
            reply_to=exporter.aggregator.ref,
        )
    )
    exporter.send()

    settled = {s.batch_id: s for s in exporter.settled(3)}
    assert settled[good.batch_id].exported_events == 1
    assert settled[99].exported_events == 0
    assert sum(settled[99].dropped.values()) == 3
    assert len(exporter.transport.requests) == 2


# --- circuit breaker ----------------------------------------------------------------------------


def open_breaker(exporter: Harness, threshold: int) -> None:
    exporter.transport.answer(*[status(503)] * threshold)
    for _ in range(threshold):
        exporter.send()
    settled = exporter.settled(threshold)
    assert all(s.dropped == {"export_failed": 1} for s in settled)
    assert exporter.breaker()["state"] == "OPEN"


def test_breaker_opens_after_threshold_failed_batches_and_drops_the_next_as_breaker_open(
    start: Callable[..., Harness],
) -> None:
    exporter = start(breaker_threshold=3, max_retries=0)
    open_breaker(exporter, 3)

    exporter.send(counts=(5,))
    settled = exporter.settled(4)[-1]
    assert settled.dropped == {"breaker_open": 5}
    assert len(exporter.transport.requests) == 3
    assert exporter.snapshot()["dropped"] == {"export_failed": 3, "breaker_open": 5}


def test_breaker_counts_batches_not_attempts(start: Callable[..., Harness]) -> None:
    exporter = start(breaker_threshold=2, max_retries=3)
    exporter.transport.answer(status(503), status(503), status(503), export_ok(1))
    exporter.send()
    for _ in range(3):
        exporter.timer.fire(RetryBatch)

    assert exporter.settled()[0].exported_events == 1
    assert exporter.breaker()["state"] == "CLOSED"


def test_after_open_s_one_probe_goes_out_and_two_successes_close_the_breaker(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    exporter = start(breaker_threshold=2, max_retries=0, breaker_open_s=30)
    open_breaker(exporter, 2)
    clock.advance(29.9)
    exporter.send()
    assert exporter.settled(3)[-1].dropped == {"breaker_open": 1}

    clock.advance(0.1)
    exporter.send()
    assert exporter.settled(4)[-1].exported_events == 1
    breaker = exporter.breaker()
    assert (breaker["state"], breaker["half_open_successes"]) == ("HALF_OPEN", 1)

    exporter.send()
    assert exporter.settled(5)[-1].exported_events == 1
    breaker = exporter.breaker()
    assert breaker["state"] == "CLOSED"
    assert breaker["transitions"] == {
        "CLOSED->OPEN": 1,
        "OPEN->HALF_OPEN": 1,
        "HALF_OPEN->CLOSED": 1,
    }
    assert len(exporter.transport.requests) == 4


def test_half_open_probes_go_one_at_a_time(
    start: Callable[..., Harness], clock: FakeClock, wait_until: Callable[..., Any]
) -> None:
    exporter = start(breaker_threshold=1, max_retries=0, breaker_open_s=30)
    open_breaker(exporter, 1)
    clock.advance(30)
    release = pykka.ThreadingFuture[None]()

    def held(request: Any) -> HttpOutcome:
        release.get(timeout=ASK_S)
        return export_ok(1)

    exporter.transport.answer(held)
    for _ in range(3):
        exporter.send(alone=False)  # the probe holds the exporter: nothing would answer an ask
    wait_until(lambda: exporter.transport.in_flight == 1, what="the probe in flight")
    assert len(exporter.transport.requests) == 1  # only the first failure is done
    release.set(None)

    settled = exporter.settled(4)
    assert [s.exported_events for s in settled[1:]] == [1, 1, 1]
    assert exporter.transport.max_in_flight == 1
    assert exporter.breaker()["state"] == "CLOSED"


def test_a_failed_half_open_probe_reopens_the_breaker_without_retrying(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    exporter = start(breaker_threshold=1, max_retries=2, breaker_open_s=30)
    exporter.transport.answer(status(503), status(503), status(503))
    exporter.send()
    exporter.timer.fire(RetryBatch)
    exporter.timer.fire(RetryBatch)
    assert exporter.settled()[0].dropped == {"export_failed": 1}
    assert exporter.breaker()["state"] == "OPEN"

    clock.advance(30)
    exporter.transport.answer(status(503))
    exporter.send()
    probe = exporter.settled(2)[-1]
    assert probe.dropped == {"export_failed": 1}
    assert exporter.timer.pending(RetryBatch) == []
    assert exporter.breaker()["state"] == "OPEN"
    assert len(exporter.transport.requests) == 4

    exporter.send()
    assert exporter.settled(3)[-1].dropped == {"breaker_open": 1}
    assert len(exporter.transport.requests) == 4


def test_breaker_disabled_never_drops_as_breaker_open(start: Callable[..., Harness]) -> None:
    exporter = start(breaker_enabled=False, breaker_threshold=1, max_retries=0)
    exporter.transport.answer(status(503), status(503))
    for _ in range(3):
        exporter.send()

    settled = exporter.settled(3)
    assert [s.dropped for s in settled] == [{"export_failed": 1}, {"export_failed": 1}, {}]


# --- rate limit and bounds ----------------------------------------------------------------------


def test_rate_limiter_defers_with_a_pump_instead_of_dropping(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=2.0)
    exporter.send()
    exporter.send()

    assert len(exporter.settled()) == 1
    (pump,) = exporter.timer.wait_pending(Pump)
    assert pump.delay_s == pytest.approx(0.5)
    state = exporter.snapshot()
    assert (state["queued_batches"], state["stats"]["rate_limited"]) == (1, 1)
    assert len(exporter.transport.requests) == 1

    exporter.timer.fire(Pump)  # too early: the clock has not moved, so it waits again
    exporter.timer.wait_pending(Pump)
    assert len(exporter.settled_now()) == 1

    clock.advance(0.5)
    exporter.timer.fire(Pump)
    settled = exporter.settled(2)
    assert [s.exported_events for s in settled] == [1, 1]
    assert exporter.snapshot()["dropped"] == {}


def test_the_exporter_takes_every_batch_handed_over_and_drops_none_for_room(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    # The aggregator's export queue is the one bound on unsettled batches; the exporter adds none.
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0, max_pending_batches=2)
    batches = [exporter.send(counts=(2,)) for _ in range(4)]

    (first,) = exporter.settled(1)
    assert (first.batch_id, first.dropped) == (batches[0].batch_id, {})
    exporter.timer.wait_pending(Pump)
    assert exporter.snapshot()["queued_batches"] == 3
    clock.advance(1.0)
    exporter.timer.fire(Pump)
    settled = exporter.settled(4)
    assert sorted(s.batch_id for s in settled if s.exported_events == 2) == [1, 2, 3, 4]
    assert exporter.snapshot()["dropped"] == {}


# --- batches waiting together share a request ---------------------------------------------------


def held_back(exporter: Harness, clock: FakeClock, *contexts: ConnectionContext) -> None:
    """Spend the one token on a first batch, queue one batch per context behind it, refill."""
    exporter.send(counts=(1,))
    exporter.settled(1)
    for context in contexts:
        exporter.send(context, counts=(2, 1))
    exporter.timer.wait_pending(Pump)
    assert exporter.snapshot()["queued_batches"] == len(contexts)
    clock.advance(1.0)


def test_batches_waiting_for_a_token_go_in_one_request_per_credentials(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0)
    other = make_context(2, bearer("token-2"))
    same_value = make_context(3, bearer("token-1"))  # another provider, the same credentials
    held_back(exporter, clock, AUTHED, other, same_value, AUTHED, make_context(4, None))

    exporter.timer.fire(Pump)
    exporter.transport.wait_requests(2)
    merged = exporter.transport.requests[1]
    assert merged.headers["Authorization"] == "Bearer token-1"
    assert [log["entry"]["sql_driver_log"]["session_id"] for log in merged.proto_logs()] == [
        "s-2-0",
        "s-2-1",
        "s-4-0",
        "s-4-1",
        "s-5-0",
        "s-5-1",
    ]
    assert exporter.snapshot()["queued_batches"] == 2  # token-2's and the unauthenticated one
    for sent in (3, 4):
        clock.advance(1.0)
        exporter.timer.fire(Pump)
        exporter.transport.wait_requests(sent)
        exporter.snapshot()  # the exporter is done with this pump before the clock moves
    requests = exporter.transport.wait_requests(4)
    assert requests[2].headers["Authorization"] == "Bearer token-2"
    assert requests[3].url == BASE_URL + "/telemetry-unauth"
    assert [len(r.proto_logs()) for r in requests] == [1, 6, 2, 2]
    settled = exporter.settled(6)
    assert Counter(s.batch_id for s in settled) == Counter(range(1, 7))
    assert all(s.dropped == {} for s in settled)
    assert sorted(s.exported_events for s in settled) == [1, 3, 3, 3, 3, 3]
    assert exporter.snapshot()["stats"]["merged_batches"] == 2


def test_a_partial_answer_to_a_shared_request_is_shared_in_body_order(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0)
    held_back(exporter, clock, AUTHED, AUTHED, AUTHED)
    exporter.transport.answer(export_ok(3))  # the first batch's two logs, one of the second's

    exporter.timer.fire(Pump)
    settled = {s.batch_id: s for s in exporter.settled(4)}
    assert (settled[2].exported_events, settled[2].dropped) == (3, {})
    assert (settled[3].exported_events, settled[3].exported_logs) == (2, 1)
    assert settled[3].dropped == {"partial_rejected": 1}
    assert (settled[4].exported_events, settled[4].dropped) == (0, {"partial_rejected": 3})


def test_each_batch_of_a_failed_shared_request_retries_on_its_own(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0, max_retries=1)
    held_back(exporter, clock, AUTHED, AUTHED)
    exporter.transport.answer(status(503), status(503))

    exporter.timer.fire(Pump)
    retries = exporter.timer.wait_pending(RetryBatch, count=2)
    assert sorted(r.message.batch_id for r in retries) == [2, 3]
    exporter.timer.fire(RetryBatch)
    exporter.timer.fire(RetryBatch)
    reply = pykka.ThreadingFuture[Any]()
    exporter.ref.tell(Flush(reply=reply))  # both wait for a token again: they share again
    assert reply.get(timeout=ASK_S) is True
    settled = exporter.settled(3)
    assert [(s.batch_id, s.dropped) for s in settled[1:]] == [
        (2, {"export_failed": 3}),  # each had one retry, and the second answer failed too
        (3, {"export_failed": 3}),
    ]
    assert [len(r.proto_logs()) for r in exporter.transport.requests] == [1, 4, 4]


def test_batches_that_arrive_while_a_request_is_under_way_share_the_next_one(
    start: Callable[..., Harness], wait_until: Callable[..., Any]
) -> None:
    exporter = start()  # tokens to spare: the exporter itself is what they wait for
    release = pykka.ThreadingFuture[None]()

    def held(request: Any) -> HttpOutcome:
        release.get(timeout=ASK_S)
        return export_ok(1)

    exporter.transport.answer(held)
    exporter.send(alone=False)
    wait_until(lambda: exporter.transport.in_flight == 1, what="the first request in flight")
    for _ in range(3):
        exporter.send(counts=(1, 1), alone=False)
    release.set(None)

    settled = exporter.settled(4)
    assert Counter(s.batch_id for s in settled) == Counter(range(1, 5))
    assert [len(r.proto_logs()) for r in exporter.transport.requests] == [1, 6]
    assert sum(s.exported_events for s in settled) == 7


def test_a_shared_body_stays_under_the_cap_and_what_does_not_fit_waits(
    start: Callable[..., Harness], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0)
    held_back(exporter, clock, AUTHED, AUTHED, AUTHED)
    one = len(exporter.transport.requests[0].body)
    monkeypatch.setattr(outbox, "MAX_BODY_BYTES", 5 * one)  # four logs, not six

    exporter.timer.fire(Pump)
    settled = exporter.settled(3)
    assert [s.batch_id for s in settled] == [1, 2, 3]
    assert len(exporter.transport.requests[1].proto_logs()) == 4
    assert len(exporter.transport.requests[1].body) <= 5 * one
    assert exporter.snapshot()["queued_batches"] == 1


def test_no_body_carries_more_than_a_thousand_logs_merged_or_not(
    start: Callable[..., Harness], clock: FakeClock
) -> None:
    # Small logs: three batches of 400 are far below the byte cap together, but the service
    # takes at most 1,000 protoLogs a request (the local endpoint answers 1,001 with 400).
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0)
    exporter.send(counts=(1,))
    exporter.settled(1)
    for _ in range(3):
        exporter.send(counts=(1,) * 400)
    exporter.timer.wait_pending(Pump)
    clock.advance(1.0)
    exporter.timer.fire(Pump)
    exporter.settled(3)  # the second request
    assert [len(r.proto_logs()) for r in exporter.transport.requests] == [1, 800]
    assert exporter.snapshot()["queued_batches"] == 1

    exporter.send(counts=(1,) * 2_500, alone=False)  # one batch above the cap: cut in chunks
    exporter.ref.tell(Flush(reply=None))
    (big,) = exporter.settled(5)[4:]
    assert [len(r.proto_logs()) for r in exporter.transport.requests[2:]] == [400, 1000, 1000, 500]
    assert big.exported_events == 2_500


def test_flush_sends_queued_batches_past_the_rate_limit_and_replies(
    start: Callable[..., Harness],
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=1.0)
    for _ in range(3):
        exporter.send()
    exporter.timer.wait_pending(Pump)
    reply = pykka.ThreadingFuture[Any]()
    exporter.ref.tell(Flush(reply=reply))

    assert reply.get(timeout=ASK_S) is True
    assert len(exporter.settled(3)) == 3


# --- drain --------------------------------------------------------------------------------------


def test_drain_leaves_a_waiting_batch_to_its_retry_when_it_is_due_before_the_deadline(
    start: Callable[..., Harness], recorder: Callable[[], Recording], clock: FakeClock
) -> None:
    exporter = start(retry_delay_ms=1000)
    exporter.transport.answer(status(503), export_ok(1))
    exporter.send()
    (retry,) = exporter.timer.wait_pending(RetryBatch)
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=clock() + 10, notify=notify.ref))

    notify.barrier()
    assert notify.of_type(Drained) == []  # the server's wait is honoured, not rushed
    assert len(exporter.transport.requests) == 1
    assert not retry.handle.cancelled
    assert exporter.snapshot()["draining"] is True
    exporter.timer.fire(RetryBatch)
    notify.wait_for(Drained)
    assert exporter.settled()[0].exported_events == 1
    requests = exporter.transport.requests
    assert len(requests) == 2
    assert requests[1].timeout_s == pytest.approx(10.0)


def test_drain_settles_a_waiting_batch_due_after_the_deadline_at_once(
    start: Callable[..., Harness], recorder: Callable[[], Recording], clock: FakeClock
) -> None:
    exporter = start(retry_after_max_s=60)
    exporter.transport.answer(status(429, retry_after_s=30.0))
    exporter.send(counts=(2,))
    (retry,) = exporter.timer.wait_pending(RetryBatch)
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=clock() + 5, notify=notify.ref))

    notify.wait_for(Drained)
    (settled,) = exporter.settled()
    assert settled.dropped == {"shutdown_timeout": 2}
    assert retry.handle.cancelled
    assert len(exporter.transport.requests) == 1

    exporter.ref.tell(RetryBatch(batch_id=1))  # a late timer message finds nothing to do
    assert len(exporter.settled_now()) == 1


def test_drain_after_its_deadline_settles_waiting_batches_as_shutdown_timeout(
    start: Callable[..., Harness], recorder: Callable[[], Recording], clock: FakeClock
) -> None:
    exporter = start()
    exporter.transport.answer(status(503))
    exporter.send(counts=(3,))
    exporter.timer.wait_pending(RetryBatch)
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=clock(), notify=notify.ref))

    notify.wait_for(Drained)
    (settled,) = exporter.settled()
    assert settled.dropped == {"shutdown_timeout": 3}
    assert len(exporter.transport.requests) == 1


def test_drain_ignores_the_rate_limit_but_not_a_retry_past_the_deadline(
    start: Callable[..., Harness], recorder: Callable[[], Recording], clock: FakeClock
) -> None:
    exporter = start(rate_limit_burst=1, rate_limit_per_s=0.01)
    exporter.send()
    exporter.send()
    exporter.timer.wait_pending(Pump)
    exporter.transport.answer(status(429, retry_after_s=10.0))
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=clock() + 5, notify=notify.ref))

    notify.wait_for(Drained)
    settled = exporter.settled(2)
    assert [s.dropped for s in settled] == [{}, {"shutdown_timeout": 1}]
    assert len(exporter.transport.requests) == 2


def test_drain_waits_for_a_retry_that_fits_before_the_deadline(
    start: Callable[..., Harness], recorder: Callable[[], Recording], clock: FakeClock
) -> None:
    exporter = start(retry_delay_ms=100)
    exporter.transport.answer(status(503), status(503))
    exporter.send()
    exporter.timer.wait_pending(RetryBatch)
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=clock() + 5, notify=notify.ref))

    exporter.timer.fire(RetryBatch)
    exporter.transport.wait_requests(2)
    exporter.timer.wait_pending(RetryBatch)
    notify.barrier()
    assert notify.of_type(Drained) == []
    exporter.timer.fire(RetryBatch)
    notify.wait_for(Drained)
    assert exporter.settled()[0].exported_events == 1
    assert len(exporter.transport.requests) == 3


def test_drain_with_nothing_pending_reports_at_once(
    start: Callable[..., Harness], recorder: Callable[[], Recording], clock: FakeClock
) -> None:
    exporter = start()
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=clock() + 5, notify=notify.ref))
    (drained,) = notify.wait_for(Drained)
    assert drained.snapshot is None or drained.snapshot["in_flight_batches"] == 0


# --- exactly one settlement per batch -----------------------------------------------------------


def test_every_batch_settles_exactly_once_whatever_the_server_does(
    start: Callable[..., Harness], recorder: Callable[[], Recording], timer: Timer
) -> None:
    exporter = start(
        timer=timer,
        use_clock=time.monotonic,
        max_retries=2,
        retry_delay_ms=1,
        retry_max_delay_ms=5,
        breaker_threshold=4,
        breaker_open_s=1,
        rate_limit_burst=5,
        rate_limit_per_s=500.0,
        max_pending_batches=8,
    )
    rng = random.Random(1234)
    choices = [
        export_ok(1),
        export_ok(0),
        status(503),
        status(429, retry_after_s=0.0),
        status(400),
        status(401),
        status(500),
        HttpOutcome(status=200, body=b"garbage"),
        HttpOutcome(status=None, error="ConnectionResetError"),
    ]
    exporter.transport.answer(*(rng.choice(choices) for _ in range(150)))
    sent = [exporter.send(counts=(rng.randint(1, 3), rng.randint(1, 3))) for _ in range(40)]
    notify = recorder()
    exporter.ref.tell(Drain(deadline_s=time.monotonic() + 1.5, notify=notify.ref))

    notify.wait_for(Drained, timeout_s=3.0)
    settled = exporter.settled_now()
    per_batch = Counter(s.batch_id for s in settled)
    assert per_batch == Counter({b.batch_id: 1 for b in sent})
    total = sum(sum(b.event_counts) for b in sent)
    assert sum(s.exported_events + sum(s.dropped.values()) for s in settled) == total
    state = exporter.snapshot()
    assert state["in_flight_batches"] == 0
    assert state["stats"]["batches_settled"] == len(sent)
