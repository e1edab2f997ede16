"""The aggregator's ledger: the one place that counts a tree's events (aggregator-confined)."""

from __future__ import annotations

import collections
import enum

from messages.accounts import Accounts

__all__ = ["Ledger", "Place"]


class Place(enum.IntEnum):
    """Where pending events wait (an int, so counting by place is a list index, not a hash)."""

    OPEN = 0  # folded into a statement not yet emitted
    QUEUED = 1  # in a log queued for export
    IN_EXPORT = 2  # in a batch the exporter has not settled


_SHOWN = ("open_statement_events", "queued_events", "in_export_events")  # by Place, in dumps


class Ledger:
    """Counts events as they are received, held in a place, moved, exported or dropped.

    Counts are numbers of told events, so one item standing for several events (a statement's
    summary) is received with its count. Between `receive()` and its `hold()`, `drop()` or
    `export()` an event is unplaced; `balanced` says none is, so at every message boundary
    ``received == exported + sum(dropped) + pending``.
    """

    __slots__ = ("_dropped", "_held", "exported", "received")

    def __init__(self) -> None:
        self.received = 0
        self.exported = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._held = [0] * len(Place)

    def receive(self, events: int = 1) -> None:
        """`events` told events arrived; each must then be held, dropped or exported."""
        self.received += events

    def hold(self, place: Place, events: int = 1) -> None:
        """Unplaced events now wait in `place`."""
        self._held[place] += events

    def move(self, source: Place, target: Place, events: int) -> None:
        """Events waiting in `source` now wait in `target`."""
        self._held[source] -= events
        self._held[target] += events

    def drop(self, reason: str, events: int = 1, source: Place | None = None) -> None:
        """Events dropped for `reason`: unplaced ones, or ones that waited in `source`."""
        if source is not None:
            self._held[source] -= events
        self._dropped[reason] += events

    def export(self, events: int, source: Place = Place.IN_EXPORT) -> None:
        """Events that waited in `source` were exported."""
        self._held[source] -= events
        self.exported += events

    def drop_unplaced(self, reason: str) -> int:
        """Drop whatever is unplaced (after a handler bug) so the accounts balance; how many."""
        events = max(0, self.unplaced)
        if events:
            self._dropped[reason] += events
        return events

    def held(self, place: Place) -> int:
        """Events waiting in `place`."""
        return self._held[place]

    @property
    def pending(self) -> int:
        """Events waiting anywhere."""
        return sum(self._held)

    @property
    def unplaced(self) -> int:
        """Events received but neither held, exported nor dropped (0 between messages)."""
        return self.received - self.exported - sum(self._dropped.values()) - self.pending

    @property
    def balanced(self) -> bool:
        """Whether every received event is exported, dropped or pending."""
        return self.unplaced == 0

    def accounts(self) -> Accounts:
        """The ledger's totals as a frozen record."""
        return Accounts.of(
            received=self.received,
            exported=self.exported,
            dropped=self._dropped,
            pending=self.pending,
        )

    def pending_detail(self) -> dict[str, int]:
        """Pending events by place."""
        return dict(zip(_SHOWN, self._held, strict=True))
