"""One bound on unsettled batches: the aggregator's export queue, never a second at the exporter.

A real tree exports to a loopback server that answers 503 for a while, so batches wait for their
retries at the exporter. However the logs come, the aggregator never has more than
`max_pending_batches` unsettled, the exporter holds no more than that, and once the server
recovers every log is exported: nothing is dropped anywhere for want of room.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

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

MAX_PENDING_BATCHES = 2
LOGS = 12


class Outage:
    """503 for every export until `end()`; the flag is always on."""

    def __init__(self) -> None:
        self.over = threading.Event()

    def __call__(self, request: RawRequest) -> Answer:
        if request.method == "POST" and not self.over.is_set():
            return 503, {}, b'{"error": "down"}'
        return healthy_answer(request)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    started = RecordingServer()
    yield started
    started.stop()


def unsettled(host: str) -> tuple[int, int]:
    """(batches the aggregator counts unsettled, batches the exporter holds) right now."""
    state: dict[str, Any] = actors.dump_state(1.0)["hosts"][host]
    exporter = state["exporter"]
    held = exporter["queued_batches"] + exporter["retrying_batches"]
    return int(state["aggregator"]["in_flight_batches"]), int(held)


def test_the_aggregator_bounds_unsettled_batches_and_the_exporter_drops_none_for_room(
    server: RecordingServer,
) -> None:
    outage = Outage()
    server.answer = outage
    settings = fast_settings(
        batch_size=1,
        flush_interval_ms=10,
        max_pending_batches=MAX_PENDING_BATCHES,
        max_retries=1000,
        retry_delay_ms=20,
        retry_max_delay_ms=40,
        breaker_enabled=False,
        rate_limit_per_s=1000,
        rate_limit_burst=1000,
    )
    connection = actors.connect(server.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
    wait_until(lambda: connection.enabled, what="the flag to be on")
    seen: list[tuple[int, int]] = []
    for i in range(LOGS):
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
        seen.append(unsettled(connection.host))
    actors.flush(0.2)  # a flush waiting for room must not overrun the bound either
    wait_until(lambda: len(server.posts()) >= 3 * MAX_PENDING_BATCHES, what="retries under way")
    seen.append(unsettled(connection.host))
    outage.over.set()

    account = wait_settled(connection.host, LOGS, timeout_s=10.0)
    print(f"worst (aggregator unsettled, exporter held): {max(seen)}; bound {MAX_PENDING_BATCHES}")
    assert max(a for a, _ in seen) == MAX_PENDING_BATCHES  # reached, never passed
    assert max(e for _, e in seen) <= MAX_PENDING_BATCHES
    assert (account["exported"], account["dropped"]) == (LOGS, {})
    exporter = actors.dump_state(1.0)["hosts"][connection.host]["exporter"]
    assert exporter["dropped"] == {}
