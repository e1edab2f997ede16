"""The aggregator folds its lane in short slices, longer as a backlog builds, and loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_aggregator_actor import ASK_S, Harness, make_context, statement_events

from actors._aggregate.slicing import BASE_S, MAX_S, slice_budget_s
from actors._runtime.lane import LANE_WAKE
from actors._runtime.timer import Timer
from messages.accounts import snapshot_json
from messages.commands import DumpState, ExportBatch, Flush
from messages.events import ConnectionOpened

pytest_plugins = ["test_aggregator_actor"]


def test_slices_are_short_until_a_backlog_builds_then_grow_to_the_cap() -> None:
    capacity = 10_000
    assert slice_budget_s(0, capacity) == BASE_S
    assert slice_budget_s(capacity // 16, capacity) == BASE_S
    budgets = [slice_budget_s(n, capacity) for n in range(capacity // 16, capacity, 250)]
    assert budgets == sorted(budgets)
    assert slice_budget_s(capacity // 2, capacity) == MAX_S
    assert slice_budget_s(capacity * 2, capacity) == MAX_S


def offer_statements(agg: Harness, count: int) -> int:
    lane = agg.ref.actor_inbox.lane  # type: ignore[attr-defined]
    context = make_context()
    told = 0
    for n in range(count):
        for event in statement_events(f"st-{n}"):
            assert lane.offer((context, event))
            told += 1
    return told


def dump(agg: Harness) -> dict[str, Any]:
    return snapshot_json(agg.ref.ask(DumpState(), timeout=ASK_S))


def test_a_backlog_is_folded_in_several_slices_and_every_event_is_counted(
    start: Callable[..., Harness], timer: Timer
) -> None:
    agg = start(timer=timer, batch_size=100, max_queued_logs=10_000)
    agg.flag(True)
    told = offer_statements(agg, 500)  # 4,000 events: far more than one 0.2 ms slice folds
    agg.ref.tell(LANE_WAKE)

    # Wait on what reaches the exporter, not on dumps: a dump takes whatever still waits.
    agg.exporter.wait_for(ExportBatch, count=5, timeout_s=10.0)
    state = agg.ref.ask(DumpState(), timeout=ASK_S)
    assert state["stats"]["lane_slices_deferred"] >= 2
    accounts = snapshot_json(state)
    assert accounts["balanced"], accounts
    assert state["accounts"].received == told
    assert state["logs_emitted"] == {"statement": 500}


def test_a_dump_sees_every_event_told_before_it_even_between_slices(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=100, max_queued_logs=10_000)  # a manual timer: slices never come
    agg.flag(True)
    told = offer_statements(agg, 500)
    agg.ref.tell(LANE_WAKE)  # one slice, then the rest waits for a timer that never fires
    state = agg.ref.ask(DumpState(), timeout=ASK_S)
    assert state["lane_events"] == 0
    assert state["accounts"].received == told
    assert state["logs_emitted"] == {"statement": 500}
    assert dump(agg)["balanced"]


def test_events_told_while_slices_are_pending_are_folded_too(
    start: Callable[..., Harness], timer: Timer, wait_until: Callable[..., Any]
) -> None:
    agg = start(timer=timer, batch_size=100, max_queued_logs=10_000)
    agg.flag(True)
    offer_statements(agg, 299)
    agg.ref.tell(LANE_WAKE)
    agg.tell(make_context(7), ConnectionOpened(session_id="late"))

    def handed_over() -> int:  # a partial batch may go before the last whole one
        return sum(len(batch.logs) for batch in agg.exporter.of_type(ExportBatch))

    wait_until(lambda: handed_over() >= 300, 10.0, what="300 logs handed over")
    assert handed_over() == 300


# --- coalescing while the exporter is backed up ---------------------------------------------------


def test_a_backed_up_exporter_is_filled_with_whole_batches_up_to_its_bound(
    start: Callable[..., Harness],
) -> None:
    # Nothing settles (the rate limit holds every batch). Once two wait, only whole batches go,
    # so the exporter, which merges what waits, holds all it may: 4 x 10 logs, never more.
    agg = start(batch_size=10, max_pending_batches=4, max_queued_logs=40)
    agg.flag(True)
    agg.tell(make_context(), *[ConnectionOpened(session_id=f"s-{i}") for i in range(65)])
    state = dump(agg)
    assert state["dropped"] == {}
    assert [len(batch.logs) for batch in agg.batches()] == [10, 10, 10, 10]
    assert (state["received"], state["pending"], state["queued_logs"]) == (65, 65, 25)
    for batch in agg.batches()[:2]:
        agg.settle(batch)  # still two unsettled: whole batches only, the 5 others wait
    assert [len(batch.logs) for batch in agg.batches()] == [10] * 6
    assert dump(agg)["queued_logs"] == 5


def test_a_flush_sends_what_coalesces_at_once(start: Callable[..., Harness]) -> None:
    agg = start(batch_size=10, max_pending_batches=4, max_queued_logs=40)
    agg.flag(True)
    agg.tell(make_context(), *[ConnectionOpened(session_id=f"s-{i}") for i in range(25)])
    assert [len(batch.logs) for batch in agg.batches()] == [10, 10]  # 5 wait to coalesce
    agg.ref.tell(Flush(reply=None))
    assert [len(batch.logs) for batch in agg.batches()] == [10, 10, 5]


def test_batches_stay_at_batch_size_while_the_exporter_keeps_up(
    start: Callable[..., Harness],
) -> None:
    agg = start(batch_size=10, max_pending_batches=4, max_queued_logs=40)
    agg.flag(True)
    for round_ in range(5):
        agg.tell(
            make_context(), *[ConnectionOpened(session_id=f"s-{round_}-{i}") for i in range(10)]
        )
        (batch,) = agg.batches()[round_:]
        assert len(batch.logs) == 10
        agg.settle(batch)
    assert dump(agg)["exported"] == 50
