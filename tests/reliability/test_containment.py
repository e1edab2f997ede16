"""Containment: user code we call on our threads cannot stop anything that is not ours.

pykka answers a `BaseException` on any actor thread by stopping every actor in the process. An
auth callable or a user's session may raise one (`asyncio.CancelledError`, `SystemExit`,
`KeyboardInterrupt`, a `gevent.Timeout`-like `BaseException`); here it counts like a failed auth
(the logs go, stripped, to `/telemetry-unauth`) or a failed request, and an application actor
living beside the tree is untouched.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pykka
import pytest
from _support import DRIVER, RecordingServer, fast_settings, wait_until

import actors
from messages import events as ev


class GeventLikeTimeout(BaseException):
    """What `gevent.Timeout` is: a BaseException raised into whatever code runs."""


RAISED = [asyncio.CancelledError, SystemExit, KeyboardInterrupt, GeventLikeTimeout]


class ApplicationActor(pykka.ThreadingActor):
    """The application's own actor: it must outlive anything telemetry's user code does."""

    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return ("pong", message)


@pytest.fixture
def application_actor() -> Iterator[pykka.ActorRef[Any]]:
    ref = ApplicationActor.start()
    yield ref
    ref.stop(block=False)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    started = RecordingServer()
    yield started
    started.stop()


def raising(kind: type[BaseException]) -> Any:
    def auth() -> Mapping[str, str]:
        raise kind()

    return auth


@pytest.mark.parametrize("kind", RAISED, ids=lambda k: k.__name__)
def test_an_auth_callable_raising_a_base_exception_sends_unauthenticated_and_stops_nothing(
    kind: type[BaseException], server: RecordingServer, application_actor: pykka.ActorRef[Any]
) -> None:
    connection = actors.connect(
        server.url, driver=DRIVER, auth=raising(kind), settings=fast_settings()
    )
    wait_until(lambda: connection.enabled, what="the flag to be on (fetched without auth)")
    for i in range(3):
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
    assert actors.flush(5.0)
    wait_until(lambda: len(server.posts()) >= 1, what="an export")

    assert application_actor.ask("ping", timeout=2.0) == ("pong", "ping")
    assert {r.path for r in server.posts()} == {"/telemetry-unauth"}
    assert all("authorization" not in r.headers for r in server.requests)
    host = actors.dump_state(2.0)["hosts"][connection.host]
    assert host["accounting"]["exported"] == 3 and host["accounting"]["balanced"]
    assert host["exporter"]["handler_errors"] == host["feature_flags"]["handler_errors"] == 0
    assert connection.enabled  # the tree is alive too


class RaisingSession:
    """A user's requests.Session-like object that raises a BaseException on every request."""

    def __init__(self, kind: type[BaseException]) -> None:
        self.kind = kind
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls += 1
        raise self.kind()


@pytest.mark.parametrize("kind", RAISED, ids=lambda k: k.__name__)
def test_a_session_raising_a_base_exception_is_a_failed_request_and_stops_nothing(
    kind: type[BaseException], application_actor: pykka.ActorRef[Any]
) -> None:
    session = RaisingSession(kind)
    connection = actors.connect(
        "telemetry.invalid",
        driver=DRIVER,
        auth=None,
        session=session,
        settings=fast_settings(force_enable=True, max_retries=0, breaker_enabled=False),
    )
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="s"))
    actors.flush(5.0)

    def settled() -> dict[str, Any] | None:
        account = actors.dump_state(2.0)["hosts"][connection.host]["accounting"]
        return account if account["pending"] == 0 else None

    account = wait_until(settled, what="the event to settle")
    assert account["dropped"] == {"export_failed": 1}
    assert session.calls >= 1
    assert application_actor.ask("ping", timeout=2.0) == ("pong", "ping")
    assert connection.enabled


class RaisingStr:
    """A header value whose `__str__` raises: the conversion is user code too."""

    def __str__(self) -> str:
        raise KeyboardInterrupt


def test_an_auth_answer_whose_value_cannot_become_a_str_counts_as_a_failed_auth(
    server: RecordingServer, application_actor: pykka.ActorRef[Any]
) -> None:
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=lambda: {"Authorization": RaisingStr()},  # type: ignore[dict-item]
        settings=fast_settings(),
    )
    wait_until(lambda: connection.enabled, what="the flag to be on (fetched without auth)")
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="s"))
    assert actors.flush(5.0)
    wait_until(lambda: len(server.posts()) >= 1, what="an export")
    assert {r.path for r in server.posts()} == {"/telemetry-unauth"}
    assert application_actor.ask("ping", timeout=2.0) == ("pong", "ping")


class RaisingOnOurThreads(logging.Handler):
    """An application's logging handler that raises once, from the first record our actor
    threads emit through it (urllib3 logs each request at DEBUG on the exporter's thread)."""

    def __init__(self, kind: type[BaseException]) -> None:
        super().__init__(logging.DEBUG)
        self.kind = kind
        self.raised = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        ours = threading.current_thread().name.startswith(("ExporterActor", "FeatureFlagActor"))
        if ours and not self.raised.is_set():
            self.raised.set()
            raise self.kind()


@pytest.mark.parametrize("kind", RAISED, ids=lambda k: k.__name__)
def test_a_logging_handler_raising_a_base_exception_on_our_threads_stops_nothing(
    kind: type[BaseException], server: RecordingServer, application_actor: pykka.ActorRef[Any]
) -> None:
    handler = RaisingOnOurThreads(kind)
    urllib3_logger = logging.getLogger("urllib3")
    level = urllib3_logger.level
    urllib3_logger.setLevel(logging.DEBUG)
    urllib3_logger.addHandler(handler)
    try:
        connection = actors.connect(
            server.url,
            driver=DRIVER,
            auth=lambda: {"Authorization": "Bearer t"},
            settings=fast_settings(),
        )
        for i in range(3):
            assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
        assert handler.raised.wait(10.0)
        wait_until(
            lambda: (
                actors.dump_state(2.0)["hosts"][connection.host]["accounting"]["exported"]
                + sum(
                    actors.dump_state(2.0)["hosts"][connection.host]["accounting"][
                        "dropped"
                    ].values()
                )
                == 3
            ),
            what="the three events to be settled",
        )
    finally:
        urllib3_logger.removeHandler(handler)
        urllib3_logger.setLevel(level)

    assert application_actor.ask("ping", timeout=2.0) == ("pong", "ping")
    host = actors.dump_state(2.0)["hosts"][connection.host]
    assert host["accounting"]["balanced"] and host["accounting"]["told"] == 3
    for name in ("supervisor", "feature_flags", "aggregator", "exporter"):  # none was stopped
        assert isinstance(host[name], dict) and "error" not in host[name], (name, host[name])
