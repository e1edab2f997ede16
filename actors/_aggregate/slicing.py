"""How long the aggregator folds at a time before it lets the driver threads have the GIL.

Folding and building logs is pure Python: while the aggregator's thread runs it, a driver thread
waking from its network wait queues for the GIL. So the aggregator folds the lane in short
slices (`BASE_S`), and between two slices waits on its inbox for a zero-delay timer message, a
real wait that hands the GIL over. When a backlog builds up in the lane the slices grow, in
proportion, up to `MAX_S` when the lane is half full, so a burst is folded at full speed long
before the lane overflows: throughput and the bounded lane hold. A slice never takes more events
than the export queue has room for logs: the rest waits in the lane until a batch settles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["BASE_S", "CHUNK", "MAX_S", "fold_slice", "slice_budget_s"]

BASE_S = 0.0002
MAX_S = 0.004
CHUNK = 16  # items taken from the lane between two looks at the clock


def slice_budget_s(backlog: int, capacity: int) -> float:
    """Seconds of folding for the next slice, given the events waiting in a lane of `capacity`."""
    low = capacity // 16
    if backlog <= low:
        return BASE_S
    share = min(1.0, (backlog - low) / max(1, capacity // 2 - low))
    return BASE_S + share * (MAX_S - BASE_S)


def fold_slice(
    lane: Any,
    receive: Callable[[list[Any]], int],
    room: Callable[[], int],
    budget_s: float | None = None,
) -> bool:
    """Hand `receive` the lane's items, `CHUNK` at a time (fewer if `room()` says fewer logs fit
    in the export queue), for one slice of `budget_s` (by default as the backlog says); whether
    more wait. What does not fit stays in the lane: backpressure, not drops.

    `lane` is the aggregator's `EventLane` (`take(limit)`, `len()`, `capacity`).
    """
    started = time.perf_counter()
    if budget_s is None:
        budget_s = slice_budget_s(len(lane), lane.capacity)
    while True:
        limit = min(CHUNK, room())
        if limit <= 0 or not receive(lane.take(limit)):
            break
        if time.perf_counter() - started >= budget_s:
            break
    return bool(len(lane))
