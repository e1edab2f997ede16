"""The drain honours the server: a batch told to wait is re-sent no sooner than it was told.

A real loopback server answers the first export 429 with `Retry-After` (or 503, leaving the wait
to backoff) and records when each export arrives. Then the last connection closes and the tree
drains. Within the remaining deadline the drain waits as asked; a wait that does not fit is
counted as `shutdown_timeout` at once, and the batch is never rushed back to the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from _support import (
    DRIVER,
    TOKEN,
    Answer,
    RawRequest,
    RecordingServer,
    bearer,
    fast_settings,
    healthy_answer,
    wait_settled,
    wait_until,
)

import actors
from messages import events as ev


class FirstExportRefused:
    """Answers the first export `status` (with `Retry-After` if given), then healthily; keeps
    the server's own arrival time of every export (time.monotonic())."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.lock = threading.Lock()
        self.arrivals_s: list[float] = []

    def __call__(self, request: RawRequest) -> Answer:
        if request.method != "POST":
            return healthy_answer(request)
        with self.lock:
            self.arrivals_s.append(time.monotonic())
            first = len(self.arrivals_s) == 1
        if first:
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            return self.status, headers, b'{"error": "slow down"}'
        return healthy_answer(request)

    def exports(self) -> list[float]:
        with self.lock:
            return list(self.arrivals_s)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    started = RecordingServer()
    yield started
    started.stop()


def retrying(host: str) -> int:
    """Batches the host's exporter holds for a retry (0 while it is busy or gone)."""
    exporter = actors.dump_state(0.5)["hosts"].get(host, {}).get("exporter", {})
    return int(exporter.get("retrying_batches", 0))


def refuse_first_then_close(
    server: RecordingServer, answer: FirstExportRefused, **settings: int
) -> tuple[actors.Connection, float]:
    """Connect, tell one statement, see its export refused and wait for its retry, then close
    the last connection.

    Returns the connection and when it was closed (time.monotonic()).
    """
    server.answer = answer
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=bearer(TOKEN),
        # no linger: the tree drains as the last connection closes
        settings=fast_settings(flush_interval_ms=20, idle_linger_ms=0, **settings),
    )
    wait_until(lambda: connection.enabled, what="the flag to be on")
    statement = "s/q1"
    assert connection.tell(ev.StatementStarted(statement_id=statement, session_id="s"))
    assert connection.tell(ev.OperationPolled(statement_id=statement, latency_ms=2.0))
    assert connection.tell(ev.StatementCompleted(statement_id=statement, operation_latency_ms=9))
    wait_until(lambda: len(answer.exports()) == 1, what="the first export")
    wait_until(lambda: retrying(connection.host) == 1, what="the batch to wait for its retry")
    closed_s = time.monotonic()
    connection.close()
    return connection, closed_s


def test_a_drain_resends_a_batch_answered_429_no_sooner_than_its_retry_after(
    server: RecordingServer,
) -> None:
    answer = FirstExportRefused(429, retry_after="1")

    connection, _ = refuse_first_then_close(server, answer, shutdown_timeout_ms=4000)

    account = wait_settled(connection.host, 3, timeout_s=6.0)
    first_s, second_s = answer.exports()
    print(f"429 Retry-After: 1 -> re-sent {second_s - first_s:.3f} s later, while draining")
    assert second_s - first_s >= 1.0
    assert (account["exported"], account["dropped"]) == (3, {})


def test_a_drain_waits_as_backoff_says_after_a_503_without_retry_after(
    server: RecordingServer,
) -> None:
    answer = FirstExportRefused(503, retry_after=None)

    connection, _ = refuse_first_then_close(
        server, answer, retry_delay_ms=600, retry_max_delay_ms=600, shutdown_timeout_ms=4000
    )

    account = wait_settled(connection.host, 3, timeout_s=6.0)
    first_s, second_s = answer.exports()
    print(f"503, backoff 600 ms +/- 50 % -> re-sent {second_s - first_s:.3f} s later")
    assert second_s - first_s >= 0.3  # the least the jittered backoff allows
    assert (account["exported"], account["dropped"]) == (3, {})


def test_a_retry_after_beyond_the_drain_deadline_is_counted_at_once_not_rushed(
    server: RecordingServer,
) -> None:
    answer = FirstExportRefused(429, retry_after="30")

    connection, closed_s = refuse_first_then_close(server, answer, shutdown_timeout_ms=3000)

    account = wait_settled(connection.host, 3, timeout_s=6.0)
    settled_s = time.monotonic()
    print(f"429 Retry-After: 30, deadline 3 s -> counted {settled_s - closed_s:.3f} s after close")
    assert (account["exported"], account["dropped"]) == (0, {"shutdown_timeout": 3})
    assert len(answer.exports()) == 1  # never sent again
    assert settled_s - closed_s < 2.0  # counted when the drain began, not at its deadline
