"""The aggregator's final drain as one phase value, with what the drain needs to finish."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from messages.commands import Teller
from messages.snapshots import BreakerSnapshot

__all__ = ["DrainState", "Phase"]


class Phase(enum.Enum):
    """Where the aggregator is in its life; events told after `RUNNING` are `after_shutdown`."""

    RUNNING = "running"
    AWAITING_FLAG = "awaiting_flag"  # drain asked before the flag was known: wait, boundedly
    DRAINING = "draining"  # the exporter sends what is left by the deadline
    CLOSED = "closed"  # final accounts told; the lane is closed


@attrs.define
class DrainState:
    """The drain's phase, whom to tell when done, its deadline and the exporter's last word."""

    phase: Phase = Phase.RUNNING
    notify: Teller | None = None
    deadline_s: float = 0.0
    exporter_final: Any = None
    breaker: BreakerSnapshot | None = None
