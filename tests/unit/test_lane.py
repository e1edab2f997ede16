"""The express lane's hand-off and wake rule, with the interleavings forced by hooks.

A `HookedDeque` stands in for the lane's deque and runs another thread's step (the aggregator
closing, a driver offering) at the exact point between two steps of the code under test, so each
interleaving is run deterministically instead of hoped for.
"""

from __future__ import annotations

import collections
import pathlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from waiting import poll_until

import actors
import actors._runtime.lane as lane_module
from actors._runtime.lane import EventLane, LaneItem
from actors._runtime.process import state
from messages import events as ev
from messages.commands import ConnectionContext
from messages.sysconfig import DriverInfo

HOST = "lane.example.com"
CONTEXT = ConnectionContext(
    connection_id=1, host=HOST, auth=None, user_agent="TestDriver/1.0.0", system_configuration=None
)
DRIVER = DriverInfo(name="TestDriver", version="1.0.0")
WAIT_S = 5.0


class HookedDeque(collections.deque[Any]):
    """A deque that runs `before_append` / `after_append` around its next append, once each."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.before_append: Callable[[], None] | None = None
        self.after_append: Callable[[], None] | None = None

    def append(self, item: Any) -> None:
        before, self.before_append = self.before_append, None
        if before is not None:
            before()
        super().append(item)
        after, self.after_append = self.after_append, None
        if after is not None:
            after()


class Drops:
    """Records what the lane counts at the facade, by reason."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        monkeypatch.setattr(lane_module, "drop", self._drop)
        monkeypatch.setattr(lane_module, "overflow", self._overflow)

    def _drop(self, host: str, reason: str, count: int = 1) -> None:
        assert host == HOST
        self.counts[reason] += count

    def _overflow(self, host: str) -> None:
        assert host == HOST
        self.counts["queue_full"] += 1


@pytest.fixture
def drops(monkeypatch: pytest.MonkeyPatch) -> Drops:
    return Drops(monkeypatch)


def hooked_lane(capacity: int = 100) -> tuple[EventLane, HookedDeque, list[int]]:
    wakes: list[int] = []
    lane = EventLane(capacity, lambda: wakes.append(1))
    items = HookedDeque()
    lane._items = items  # type: ignore[misc]
    return lane, items, wakes


def item(n: int = 0) -> LaneItem:
    return (CONTEXT, ev.ConnectionOpened(session_id=f"s-{n}"))


# --- the wake rule ------------------------------------------------------------------------------


def test_offers_wake_the_aggregator_once_while_it_is_not_looking() -> None:
    lane, _, wakes = hooked_lane()
    assert all(lane.offer(item(i)) for i in range(3))
    assert (len(wakes), lane.scheduled, len(lane)) == (1, True, 3)

    assert [event.session_id for _, event in lane.take()] == ["s-0", "s-1", "s-2"]  # type: ignore[attr-defined]
    assert lane.quiet() is True and lane.scheduled is False
    assert lane.offer(item(3))
    assert len(wakes) == 2


def test_an_offer_just_before_the_aggregator_goes_quiet_keeps_it_looking() -> None:
    lane, _, wakes = hooked_lane()
    lane.scheduled = True  # the aggregator is looking: the driver does not wake it
    assert lane.offer(item())
    assert wakes == []
    assert lane.quiet() is False  # it sees the event instead of waiting for a wake-up
    assert lane.scheduled is True and len(lane.take()) == 1


def test_an_offer_while_the_aggregator_goes_quiet_is_woken_or_seen() -> None:
    lane, _, wakes = hooked_lane()
    lane.scheduled = True

    class Racing(HookedDeque):
        """A driver offers between the aggregator's clearing of `scheduled` and its look."""

        race: Callable[[], object] | None = None

        def __len__(self) -> int:
            race, self.race = self.race, None
            if race is not None:
                race()
            return super().__len__()

    racing = Racing()
    racing.race = lambda: lane.offer(item())
    lane._items = racing  # type: ignore[misc]

    went_quiet = lane.quiet()
    assert len(lane) == 1
    assert wakes or not went_quiet, "an event waits, the aggregator is quiet and nobody woke it"


# --- closing (hole: an event appended while the lane closes) -----------------------------------


def test_an_event_appended_after_the_closer_took_the_rest_is_counted_by_its_driver(
    drops: Drops,
) -> None:
    lane, items, _ = hooked_lane()
    assert lane.offer(item(0))
    final: list[LaneItem] = []
    # The driver has passed the `closed` check; the aggregator closes and takes before it appends.
    items.before_append = lambda: final.extend(lane.close())

    assert lane.offer(item(1)) is False
    assert len(final) == 1  # the closer counted the event that was there
    assert drops.counts == {"after_shutdown": 1}  # the driver counted its own, late one
    assert len(lane) == 0  # nothing waits unread


def test_an_event_the_closer_took_is_not_counted_again_by_its_driver(drops: Drops) -> None:
    lane, items, _ = hooked_lane()
    final: list[LaneItem] = []
    # Appended before the close, but the driver looks at `closed` again only after it.
    items.after_append = lambda: final.extend(lane.close())

    assert lane.offer(item()) is False
    assert len(final) == 1 and drops.counts == {}  # counted once, by the closer
    assert len(lane) == 0


def test_a_closed_lane_refuses_and_counts_after_shutdown(drops: Drops) -> None:
    lane, _, wakes = hooked_lane()
    assert lane.close() == []
    assert lane.offer(item()) is False
    assert (drops.counts, wakes, len(lane)) == ({"after_shutdown": 1}, [], 0)


def test_a_wake_up_that_finds_the_aggregator_stopped_takes_the_event_back(drops: Drops) -> None:
    def dead() -> None:
        raise RuntimeError("actor dead")

    lane = EventLane(10, dead)
    assert lane.offer(item()) is False
    assert (drops.counts, len(lane)) == ({"after_shutdown": 1}, 0)


# --- capacity (hole: an unbounded lane) ---------------------------------------------------------


def test_a_full_lane_refuses_and_counts_queue_full(drops: Drops) -> None:
    lane, _, _ = hooked_lane(capacity=3)
    results = [lane.offer(item(i)) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert (len(lane), drops.counts) == (3, {"queue_full": 2})
    lane.take()
    assert lane.offer(item(5))


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_lane_capacity_must_be_a_positive_int(capacity: Any) -> None:
    with pytest.raises(ValueError, match="lane capacity"):
        EventLane(capacity, lambda: None)


def test_the_lane_capacity_setting_rejects_zero() -> None:
    with pytest.raises(ValueError, match="lane_capacity"):
        actors.TelemetrySettings(lane_capacity=0)


# --- through the facade, with a real tree -------------------------------------------------------


@pytest.fixture
def sink(tmp_path: pathlib.Path) -> Iterator[actors.TelemetrySettings]:
    yield actors.TelemetrySettings(
        sink="file", file_path=str(tmp_path / "logs.jsonl"), flush_interval_ms=20
    )
    actors.shutdown(2.0)


def test_an_event_told_while_the_tree_shuts_down_is_counted_not_stranded(
    sink: actors.TelemetrySettings,
) -> None:
    connection = actors.connect(HOST, driver=DRIVER, settings=sink)
    assert connection.tell(ev.ConnectionOpened(session_id="s-0"))
    lane = connection._lane
    assert lane is not None
    items = HookedDeque(lane._items)
    lane._items = items  # type: ignore[misc]
    unrouted_before = int(repr(state.unrouted)[len("count(") : -1])
    # The driver passed the `closed` check; the whole tree drains and stops before it appends.
    items.before_append = lambda: actors.shutdown(2.0)

    assert connection.tell(ev.ConnectionOpened(session_id="late")) is False
    report = actors.dump_state()
    accounting = report["hosts"][HOST]["accounting"]
    late = report["dropped_without_registry"] - unrouted_before
    assert (accounting["told"], accounting["exported"], late) == (1, 1, 1)
    assert len(lane) == 0


def test_a_flooded_lane_stays_within_its_capacity_and_every_event_is_accounted(
    sink: actors.TelemetrySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import actors.aggregator as aggregator_module

    release = threading.Event()
    real = aggregator_module.build_log

    def stalling_build_log(context: Any, kind: Any, log: Any, now_ms: int) -> Any:
        if log.session_id == "stall":
            release.wait(WAIT_S)  # the aggregator is busy: the lane fills
        return real(context, kind, log, now_ms)

    monkeypatch.setattr(aggregator_module, "build_log", stalling_build_log)
    settings = actors.TelemetrySettings(
        sink=sink.sink, file_path=sink.file_path, lane_capacity=5, flush_interval_ms=20
    )
    connection = actors.connect(HOST, driver=DRIVER, settings=settings)
    assert connection.tell(ev.ConnectionOpened(session_id="stall"))
    lane = connection._lane
    assert lane is not None
    poll_until(lambda: len(lane) == 0, WAIT_S, "the aggregator to take the stalling event")
    accepted = [connection.tell(ev.ConnectionOpened(session_id=f"s-{i}")) for i in range(20)]
    longest = len(lane)
    release.set()

    assert accepted == [True] * 5 + [False] * 15
    assert longest == 5
    assert actors.flush(WAIT_S)
    accounting = actors.dump_state()["hosts"][HOST]["accounting"]
    assert accounting["told"] == 21 and accounting["balanced"], accounting
    assert accounting["dropped"] == {"queue_full": 15}
    assert accounting["exported"] == 6 and accounting["pending"] == 0


def test_events_told_from_many_threads_are_all_accounted(sink: actors.TelemetrySettings) -> None:
    connection = actors.connect(HOST, driver=DRIVER, settings=sink)
    start = threading.Barrier(4, timeout=WAIT_S)

    def driver(n: int) -> None:
        start.wait()
        for i in range(500):
            connection.tell(ev.ConnectionOpened(session_id=f"s-{n}-{i}"))

    threads = [threading.Thread(target=driver, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert actors.flush(WAIT_S)
    accounting = actors.dump_state()["hosts"][HOST]["accounting"]
    assert accounting["told"] == 2000 and accounting["balanced"], accounting
    assert accounting["exported"] + accounting["dropped"].get("queue_full", 0) == 2000
