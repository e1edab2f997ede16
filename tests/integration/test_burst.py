"""Bursts at the shipped defaults: what the rate limit holds back is merged, so nothing drops.

At 10 requests/s (a burst of 20) and 100 logs a batch, one request per batch drains 1,000 logs/s,
and a driver thread tells far faster: the aggregator's 1,000-log queue used to overflow
(`queue_full`). Now batches that wait at the exporter share a request up to the body cap.

The test is deterministic: the exporter's rate limiter reads a fake clock and its waits are timer
messages the test delivers, so "the driver tells 1,000 logs per tenth of a second" is a loop, not
a race, while the requests are real ones to the local endpoint. A real driver's burst, as fast as
one thread goes, is a race with the GIL; the benchmark's burst rows measure it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from actors._export.http import Urllib3Transport, new_pool_manager
from actors._runtime.lane import LANE_WAKE
from actors._runtime.timer import Timer
from actors.aggregator import AggregatorActor
from actors.exporter import ExporterActor
from actors.tools.local_endpoint import LocalEndpoint
from messages import events as ev
from messages.accounts import snapshot_json
from messages.commands import ConnectionContext, DumpState, FlagDecided, Flush, Pump
from messages.config import TelemetrySettings
from messages.records import SystemConfiguration

if TYPE_CHECKING:
    from conftest import FakeClock, ManualTimer

ASK_S = 10.0
TICK_S = 0.1  # one token of the shipped 10 requests/s
PER_TICK = 1_000  # logs told per tick: 10,000 logs/s, ten times what a request per batch drains
TICKS = 8


@pytest.fixture
def tree(
    endpoint: LocalEndpoint, token: str, manual_timer: ManualTimer, clock: FakeClock
) -> Iterator[tuple[Any, Any]]:
    """An exporter (fake clock, manual timer) posting to `endpoint`, behind an aggregator."""
    settings = TelemetrySettings()  # the shipped defaults
    transport = Urllib3Transport(new_pool_manager(), connect_timeout_s=5.0, read_timeout_s=10.0)
    exporter = ExporterActor.start(
        base_url=endpoint.url,
        settings=settings,
        transport=transport,
        timer=manual_timer,
        clock=clock,
    )
    lane_timer = Timer("burst-test")  # the aggregator's own slices and ticks, in real time
    aggregator = AggregatorActor.start(settings=settings, exporter=exporter, timer=lane_timer)
    aggregator.tell(FlagDecided(enabled=True))
    yield aggregator, exporter
    aggregator.stop()
    exporter.stop()
    lane_timer.stop(timeout_s=2.0)


def settle_down(aggregator: Any, exporter: Any) -> None:
    """Let batches and settlements go back and forth until neither actor has more to do now."""
    for _ in range(4):
        aggregator.ask(DumpState(), timeout=ASK_S)  # takes the lane, hands batches over
        exporter.ask(DumpState(), timeout=ASK_S)  # takes the batches
        exporter.ask(DumpState(), timeout=ASK_S)  # ... and the send it told itself after them


def burst_context(endpoint: LocalEndpoint, token: str) -> ConnectionContext:
    """The one connection every event of a burst is told on."""
    return ConnectionContext(
        connection_id=1,
        host=endpoint.host_port,
        auth=lambda: {"Authorization": f"Bearer {token}"},
        user_agent="BurstDriver/1.0.0",
        system_configuration=SystemConfiguration(driver_name="BurstDriver", driver_version="1"),
    )


def flushed_state(aggregator: Any) -> dict[str, Any]:
    """Flush (it answers once everything told before it is out), then the aggregator's state."""
    reply = pykka.ThreadingFuture[Any]()
    aggregator.tell(Flush(reply=reply))
    assert reply.get(timeout=ASK_S) is True
    return dict(snapshot_json(aggregator.ask(DumpState(), timeout=ASK_S)))


def test_a_burst_the_rate_limit_holds_back_is_merged_into_larger_requests_and_nothing_drops(
    tree: tuple[Any, Any],
    endpoint: LocalEndpoint,
    token: str,
    manual_timer: ManualTimer,
    clock: FakeClock,
) -> None:
    aggregator, exporter = tree
    context = burst_context(endpoint, token)
    lane = aggregator.actor_inbox.lane
    told = 0
    for _ in range(TICKS):
        for _ in range(PER_TICK):
            assert lane.offer((context, ev.ErrorOccurred(error_name="E", session_id=f"s{told}")))
            told += 1
        aggregator.tell(LANE_WAKE)
        settle_down(aggregator, exporter)
        clock.advance(TICK_S)  # one more token
        for _ in manual_timer.pending(Pump):
            manual_timer.fire(Pump)
        settle_down(aggregator, exporter)
    state = flushed_state(aggregator)
    assert state["balanced"], state
    assert state["dropped"] == {}, state
    assert state["exported"] == told == TICKS * PER_TICK
    assert endpoint.stats()["logs_accepted"] == told
    requests = sum(endpoint.stats()["requests"].get("/telemetry-ext", {}).values())
    assert told / requests > 100  # more logs per request than a batch holds


def test_a_burst_larger_than_the_queue_and_the_exporter_hold_waits_in_the_lane_and_all_of_it_goes(
    tree: tuple[Any, Any], endpoint: LocalEndpoint, token: str
) -> None:
    # 6,000 logs told at once: twice what the 1,000-log queue and the exporter's 20 batches hold.
    # The aggregator folds only what the queue has room for; the rest waits in the lane (10,000
    # events) until batches settle, and the flush goes on only once all of it is out.
    aggregator, _ = tree
    context = burst_context(endpoint, token)
    lane = aggregator.actor_inbox.lane
    told = 6_000
    for n in range(told):
        assert lane.offer((context, ev.ErrorOccurred(error_name="E", session_id=f"s{n}")))
    aggregator.tell(LANE_WAKE)
    waiting = snapshot_json(aggregator.ask(DumpState(), timeout=ASK_S))
    assert waiting["balanced"] and waiting["received"] == told, waiting  # lane events pending
    assert waiting["lane_events"] > 0 and waiting["dropped"] == {}, waiting

    state = flushed_state(aggregator)
    assert state["dropped"] == {} and state["exported"] == told, (state, endpoint.stats())
    assert state["stats"]["lane_waits_for_room"] >= 1
    assert endpoint.stats()["logs_accepted"] == told
