"""Every cell that more than one thread touches, with its rule; the express lane is the main one.

The rule for every cell here: one writer (or, for the lane's deque, atomic operations only);
readers tolerate a stale value. Nothing here takes a lock. The cells:

- `EventLane` (this module): driver events on their way into a host's aggregator. Driver threads
  `offer()`; only the aggregator's thread `take()`s and `close()`s. Its `scheduled` flag is set by
  drivers and cleared only by the aggregator, which looks at the deque again after clearing it, so
  a wake-up is never lost (at worst one is doubled).
- `FlagView` (`actors.feature_flags`): the host's flag as drivers see it for `Connection.enabled`;
  written only by the flag actor.
- `StopSignal` (`actors._export.outbox`): the tree's drain deadline, written once by the
  supervisor and read by the exporter before each send.
- `TimerHandle` (`actors._runtime.timer`): `cancelled`, written by whoever cancels, read by the
  timer thread; a late read delivers one message the actor then ignores.
- `ProcessState` (`actors._runtime.process`): the facade's process-wide handles; its lock guards
  the lazy start of the registry and the HTTP pool on the `connect()` path, never `tell()`.
  Its `leases` (a `FastLease` per host) are written only by the published registry's thread,
  whole entries replaced; `connect()` reads them. A lease's `Holders` set is added to and
  discarded from by driver threads (atomic set operations) and read by the registry; a connect
  joins it before reading the lease again, so the registry never stops a tree it joined.

Locks are allowed only there (the facade's process lock) and in the local endpoint of
`actors.tools`, which is a test and demo server, not part of the tree.
"""

from __future__ import annotations

import collections
import logging
import queue
from collections.abc import Callable
from typing import Any

from actors._runtime.process import drop, overflow
from messages.commands import ConnectionContext

__all__ = ["LANE_WAKE", "EventLane", "ExpressInbox", "LaneItem"]

logger = logging.getLogger("actors")

LaneItem = tuple[ConnectionContext, object]
"""One told event with the connection that told it."""


class _LaneWake:
    """Told to the aggregator by a driver thread: events wait in its lane."""

    __slots__ = ()


LANE_WAKE = _LaneWake()


class EventLane:
    """A bounded hand-off of driver events to one aggregator, without a lock or an envelope.

    `offer()` (any driver thread) appends to a C deque, whose `append`/`popleft`/`len` are atomic
    under the GIL, and wakes the aggregator only when it is not already looking. The aggregator
    `take()`s everything before each message it handles and, at the end of its drain, `close()`s
    the lane and counts what it takes then. Every item is popped exactly once, by the aggregator or
    by a driver that found the lane closed after appending: so every told event is counted once.
    """

    __slots__ = ("_items", "_wake", "capacity", "closed", "scheduled")

    def __init__(self, capacity: int, wake: Callable[[], object]) -> None:
        if type(capacity) is not int or capacity < 1:
            raise ValueError(f"lane capacity must be a positive int, got {capacity!r}")
        self._items: collections.deque[LaneItem] = collections.deque()
        self._wake = wake
        self.capacity = capacity
        self.scheduled = False  # set by drivers, cleared only by the aggregator
        self.closed = False  # written only by the aggregator's thread

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: LaneItem) -> bool:
        """Hand one event over; False if refused (counted, by reason). Safe from any driver thread.

        A full lane refuses as `queue_full` (drivers racing past the length check may overshoot
        the capacity by one item each), counted per host by `process.overflow`; a closed one as
        `after_shutdown`. A driver that finds the lane closed only after appending takes back
        what is left, so nothing waits unread.
        """
        items = self._items
        if self.closed:
            drop(item[0].host, "after_shutdown")
            return False
        if len(items) >= self.capacity:
            overflow(item[0].host)  # a flood: counted without a message per event
            return False
        items.append(item)
        if not self.scheduled:  # the aggregator is not looking at its lane: wake it
            self.scheduled = True
            try:
                self._wake()
            except Exception:  # the aggregator has stopped: as if closed
                logger.debug("lane: wake-up of a stopped aggregator")
                return self._reclaim(item[0].host)
        if self.closed:  # closed while we appended: what the closer missed is ours to count
            return self._reclaim(item[0].host)
        return True

    def _reclaim(self, host: str) -> bool:
        """Take back and count what nobody will read any more (a driver thread, after close)."""
        taken = 0
        items = self._items
        while True:
            try:
                items.popleft()
            except IndexError:
                break
            taken += 1
        if taken:
            drop(host, "after_shutdown", taken)
        return False

    def take(self, limit: int = -1) -> list[LaneItem]:
        """Everything waiting, or at most `limit` items, oldest first (the aggregator only)."""
        items = self._items
        taken: list[LaneItem] = []
        while limit:
            try:
                taken.append(items.popleft())
            except IndexError:
                return taken
            limit -= 1
        return taken

    def quiet(self) -> bool:
        """Stop being looked at unless events wait: the wake rule's other half (aggregator only).

        Clears `scheduled`, then looks again: a driver that appended while it was still set did
        not wake the aggregator, so the aggregator keeps looking (True) instead.
        """
        self.scheduled = False
        if not self._items:
            return True
        self.scheduled = True
        return False

    def close(self) -> list[LaneItem]:
        """Refuse events from now on; what was already offered is returned to be counted."""
        self.closed = True
        return self.take()


class ExpressInbox(queue.SimpleQueue[Any]):
    """The aggregator's inbox: a C SimpleQueue for commands, with the host's `EventLane` beside.

    The facade finds the lane through the aggregator's reference (`actor_inbox.lane`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.lane: EventLane | None = None
