"""A tree's accounts as one typed record: what it received, exported, dropped and still holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["Accounts", "snapshot_json"]


def _sum_by_reason(parts: Iterable[tuple[tuple[str, int], ...]]) -> tuple[tuple[str, int], ...]:
    totals: dict[str, int] = {}
    for dropped in parts:
        for reason, events in dropped:
            totals[reason] = totals.get(reason, 0) + events
    return tuple(sorted(totals.items()))


@attrs.frozen(kw_only=True)
class Accounts:
    """Event counts: ``received == exported + sum(dropped) + pending`` when `balanced`.

    `dropped` holds ``(reason, events)`` pairs, one per reason, sorted by reason.
    """

    received: int = 0
    exported: int = 0
    dropped: tuple[tuple[str, int], ...] = ()
    pending: int = 0

    @classmethod
    def of(
        cls, *, received: int, exported: int, dropped: Mapping[str, int], pending: int
    ) -> Accounts:
        """Accounts from a mapping of drops by reason (reasons with no events left out)."""
        pairs = tuple(sorted((r, n) for r, n in dropped.items() if n))
        return cls(received=received, exported=exported, dropped=pairs, pending=pending)

    @property
    def dropped_total(self) -> int:
        """Events dropped, whatever the reason."""
        return sum(n for _, n in self.dropped)

    @property
    def balanced(self) -> bool:
        """Whether every event received is exported, dropped or pending."""
        return self.received == self.exported + self.dropped_total + self.pending

    def dropped_of(self, reason: str) -> int:
        """Events dropped for `reason`."""
        return sum(n for r, n in self.dropped if r == reason)

    def plus(self, *others: Accounts) -> Accounts:
        """These accounts and `others` added up (e.g. a host's trees, or the facade's drops)."""
        parts = (self, *others)
        return Accounts(
            received=sum(p.received for p in parts),
            exported=sum(p.exported for p in parts),
            dropped=_sum_by_reason(p.dropped for p in parts),
            pending=sum(p.pending for p in parts),
        )

    def as_json(self) -> dict[str, Any]:
        """The JSON form `dump_state()` shows (``dropped`` as an object by reason)."""
        return {
            "received": self.received,
            "exported": self.exported,
            "dropped": dict(self.dropped),
            "pending": self.pending,
            "balanced": self.balanced,
        }


def snapshot_json(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot whose ``accounts`` record is spread into its JSON keys; others as they are."""
    out = dict(snapshot)
    accounts = out.pop("accounts", None)
    if isinstance(accounts, Accounts):
        return {**accounts.as_json(), **out}
    if accounts is not None:
        out["accounts"] = accounts
    return out
