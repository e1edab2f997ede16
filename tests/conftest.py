"""Shared test doubles and the fixture that leaves no actor or thread behind after a test.

The doubles stand in for an actor's neighbours in unit tests: `Recorder` (a real pykka actor that
records every message and lets a test wait for one), `FakeTransport` (scripted `HttpOutcome`s,
records every request), `ManualTimer` (records schedules; the test fires them) and `FakeClock`.
Tests get them through fixtures; every wait in them has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pykka
import pytest
from servers import PostgresInfo, sqlite_odbc_connection_string, start_postgres
from thread_names import TREE_THREAD_PREFIXES, threads_named
from waiting import poll_until

import actors
from actors._export.http import HttpOutcome
from actors._runtime import process
from actors._runtime.timer import Timer, TimerHandle
from messages.accounts import Accounts
from messages.records import ExportResponse, FeatureFlag, FeatureFlagResponse
from messages.wire import (
    TELEMETRY_FLAG_NAME,
    TelemetryRequest,
    decode_request,
    encode_export_response,
    encode_feature_flags,
)

WAIT_S = 2.0
STOP_TIMEOUT_S = 2.0


def wait_until(
    condition: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy (returned), or fail at the deadline."""
    return poll_until(condition, timeout_s, what)


def tree_threads() -> list[str]:
    """Names of live threads that belong to a host tree (actors and timer)."""
    return threads_named(TREE_THREAD_PREFIXES)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """`wait_until(condition, timeout_s, what)`: poll a condition with a deadline."""
    return wait_until


@pytest.fixture(name="tree_threads")
def tree_threads_fixture() -> Callable[[], list[str]]:
    """`tree_threads()`: names of live host-tree threads."""
    return tree_threads


# --- recording actor ----------------------------------------------------------------------------


class Inbox:
    """Every message a `Recorder` got, in order; safe from any thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[Any] = []

    def add(self, message: Any) -> None:
        with self._cond:
            self._items.append(message)
            self._cond.notify_all()

    @property
    def messages(self) -> list[Any]:
        """A copy of everything received so far."""
        with self._cond:
            return list(self._items)

    def of_type(self, kind: type[Any]) -> list[Any]:
        """The messages of one class received so far."""
        return [m for m in self.messages if isinstance(m, kind)]

    def wait_for(
        self,
        match: type[Any] | Callable[[Any], bool],
        count: int = 1,
        timeout_s: float = WAIT_S,
    ) -> list[Any]:
        """Wait until `count` messages match (a class or a predicate); return all that match."""

        def matches(m: Any) -> bool:
            return isinstance(m, match) if isinstance(match, type) else bool(match(m))

        deadline_s = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [m for m in self._items if matches(m)]
                if len(found) >= count:
                    return found
                left_s = deadline_s - time.monotonic()
                if left_s <= 0:
                    pytest.fail(
                        f"timed out after {timeout_s} s waiting for {count} x {match!r}; "
                        f"got {[type(m).__name__ for m in self._items]}"
                    )
                self._cond.wait(left_s)


class Recorder(pykka.ThreadingActor):
    """A neighbour that records every message it is told (and answers asks with None)."""

    use_daemon_thread = True

    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, _Barrier):
            self.inbox.add(message)
        return None


class _Barrier:
    """Asked of a recorder to wait until its inbox is processed; not recorded."""


@attrs.define
class Recording:
    """A started `Recorder`: its ref (to hand to the actor under test) and its inbox."""

    ref: pykka.ActorRef[Any]
    inbox: Inbox

    def tell(self, message: Any) -> None:
        self.ref.tell(message)

    def wait_for(
        self, match: type[Any] | Callable[[Any], bool], count: int = 1, timeout_s: float = WAIT_S
    ) -> list[Any]:
        return self.inbox.wait_for(match, count, timeout_s)

    def of_type(self, kind: type[Any]) -> list[Any]:
        return self.inbox.of_type(kind)

    @property
    def messages(self) -> list[Any]:
        return self.inbox.messages

    def barrier(self) -> None:
        """Return once every message told to the recorder before now has been recorded."""
        self.ref.ask(_Barrier(), timeout=WAIT_S)


@pytest.fixture
def recorder() -> Callable[[], Recording]:
    """Start a `Recorder`; the autouse fixture stops it."""

    def start() -> Recording:
        inbox = Inbox()
        return Recording(ref=Recorder.start(inbox), inbox=inbox)

    return start


# --- fake transport -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Request:
    """One request a `FakeTransport` received."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout_s: float | None

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[-1].split("/", 1)[-1]

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def telemetry_request(self) -> TelemetryRequest:
        """The export request's body, decoded."""
        return decode_request(self.body or b"")

    def proto_logs(self) -> list[dict[str, Any]]:
        """The frontend logs of an export request, as JSON objects."""
        return [json.loads(text) for text in self.telemetry_request().proto_logs]


Answer = HttpOutcome | Callable[[Request], HttpOutcome]


def export_ok(accepted: int) -> HttpOutcome:
    """A 200 export answer that says `accepted` logs were taken."""
    return HttpOutcome(
        status=200, body=encode_export_response(ExportResponse(num_proto_success=accepted))
    )


def flag_answer(
    value: str | None = "true", ttl_s: object = 900, name: str = TELEMETRY_FLAG_NAME
) -> HttpOutcome:
    """A 200 feature-flag answer (`value` None leaves the flag out).

    A `ttl_s` that is no int (what a careless server may send) cannot be a record's: it is put
    into the encoded answer by hand.
    """
    flags = () if value is None else (FeatureFlag(name=name, value=value),)
    if ttl_s is None or (isinstance(ttl_s, int) and not isinstance(ttl_s, bool)):
        answer = FeatureFlagResponse(flags=flags, ttl_seconds=ttl_s)
        return HttpOutcome(status=200, body=encode_feature_flags(answer))
    body = json.loads(encode_feature_flags(FeatureFlagResponse(flags=flags)))
    body["ttl_seconds"] = ttl_s
    return HttpOutcome(status=200, body=json.dumps(body).encode())


class FakeTransport:
    """An in-process `Transport`: answers scripted outcomes in order, then healthy defaults.

    Scripted answers are `HttpOutcome`s or callables of the `Request` (e.g. one that waits on an
    event, to hold a request in flight). Safe from any thread.
    """

    def __init__(self) -> None:
        self._script: queue.SimpleQueue[Answer] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next requests, in order."""
        for item in answers:
            self._script.put(item)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        request = Request(
            method=method, url=url, headers=dict(headers), body=body, timeout_s=timeout_s
        )
        with self._cond:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            try:
                item: Answer = self._script.get_nowait()
            except queue.Empty:
                item = self._default
            return item(request) if callable(item) else item
        finally:
            with self._cond:
                self.in_flight -= 1
                self._requests.append(request)
                self._cond.notify_all()

    @staticmethod
    def _default(request: Request) -> HttpOutcome:
        if request.method == "GET":
            return flag_answer("true")
        return export_ok(len(request.telemetry_request().proto_logs))

    @property
    def requests(self) -> list[Request]:
        """Requests answered so far, in order."""
        with self._cond:
            return list(self._requests)

    def wait_requests(self, count: int, timeout_s: float = WAIT_S) -> list[Request]:
        """Wait until `count` requests have been answered; return them all."""
        deadline_s = time.monotonic() + timeout_s
        with self._cond:
            while len(self._requests) < count:
                left_s = deadline_s - time.monotonic()
                if left_s <= 0:
                    pytest.fail(f"timed out waiting for {count} requests, got {self._requests}")
                self._cond.wait(left_s)
            return list(self._requests)


@pytest.fixture
def transport() -> FakeTransport:
    """A fresh `FakeTransport`."""
    return FakeTransport()


# --- time ---------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when told (reads are atomic float loads)."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now = start_s

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A `FakeClock` at t=1000 s."""
    return FakeClock()


@attrs.define
class Scheduled:
    """One `ManualTimer.schedule` call."""

    delay_s: float
    target: Any
    message: Any
    handle: TimerHandle
    fired: bool = False

    @property
    def pending(self) -> bool:
        return not self.fired and not self.handle.cancelled


class ManualTimer:
    """A `Timer` stand-in that never delivers on its own: the test fires what was scheduled."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._scheduled: list[Scheduled] = []
        self.stopped = False

    def schedule(self, delay_s: float, target: Any, message: Any) -> TimerHandle:
        handle = TimerHandle()
        with self._cond:
            self._scheduled.append(Scheduled(delay_s, target, message, handle))
            self._cond.notify_all()
        return handle

    def stop(self, timeout_s: float = 1.0) -> None:
        self.stopped = True

    @property
    def alive(self) -> bool:
        return not self.stopped

    def scheduled(self, kind: type[Any] | None = None) -> list[Scheduled]:
        """Every schedule call so far (of one message class), in order."""
        with self._cond:
            return [s for s in self._scheduled if kind is None or isinstance(s.message, kind)]

    def pending(self, kind: type[Any] | None = None) -> list[Scheduled]:
        """Scheduled, not yet fired and not cancelled."""
        return [s for s in self.scheduled(kind) if s.pending]

    def wait_pending(self, kind: type[Any], count: int = 1, timeout_s: float = WAIT_S) -> list[Any]:
        """Wait until `count` deliveries of `kind` are pending; return them."""
        deadline_s = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [s for s in self._scheduled if isinstance(s.message, kind) and s.pending]
                if len(found) >= count:
                    return found
                left_s = deadline_s - time.monotonic()
                if left_s <= 0:
                    pytest.fail(f"timed out waiting for {count} pending {kind.__name__}")
                self._cond.wait(left_s)

    def fire(self, kind: type[Any], timeout_s: float = WAIT_S) -> Scheduled:
        """Deliver the oldest pending message of `kind` now (waiting for it to be scheduled)."""
        entry: Scheduled = self.wait_pending(kind, 1, timeout_s)[0]
        entry.fired = True
        entry.target.tell(entry.message)
        return entry


@pytest.fixture
def manual_timer() -> ManualTimer:
    """A `ManualTimer`."""
    return ManualTimer()


@pytest.fixture
def timer() -> Iterator[Timer]:
    """A real `Timer` thread, stopped after the test."""
    started = Timer("test")
    yield started
    started.stop(timeout_s=STOP_TIMEOUT_S)


# --- teardown -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def stop_all_actors() -> Iterator[None]:
    """After each test: shut the facade down, stop every actor, wait for tree threads to end.

    Autouse fixtures are torn down last, so a test's endpoints are stopped (releasing any
    hanging request) before this runs.
    """
    yield
    actors.shutdown(STOP_TIMEOUT_S)
    with contextlib.suppress(pykka.Timeout):
        pykka.ActorRegistry.stop_all(timeout=STOP_TIMEOUT_S)
    deadline_s = time.monotonic() + STOP_TIMEOUT_S
    pause = threading.Event()
    while tree_threads() and time.monotonic() < deadline_s:
        pause.wait(0.005)
    # the next test's dump_state starts empty: forget what retired registries counted
    process.state.retired = {}
    process.state.retired_forgotten = Accounts()
    process.state.retired_forgotten_hosts = 0
    process.state.retired_counts = None


# --- real servers -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresInfo]:
    """A PostgreSQL server of its own for the session on 127.0.0.1 (host, port, user, dbname, dsn).

    Skips with an install hint when PostgreSQL is missing; fails instead when CI is set.
    """
    server = start_postgres()
    try:
        assert server.info is not None
        yield server.info
    finally:
        server.stop()


@pytest.fixture
def sqlite_odbc() -> Callable[[Any], str]:
    """`sqlite_odbc(path)`: a pyodbc connection string for a SQLite file via the ODBC driver.

    Skips with an install hint when the driver is missing; fails instead when CI is set.
    """
    sqlite_odbc_connection_string(":memory:")  # skip or fail now, not inside the test
    return sqlite_odbc_connection_string
