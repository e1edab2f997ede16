"""The facade's process-wide state: the registry and pool handles, fork epoch, unrouted drops."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from typing import Any

import pykka

from messages.commands import FacadeDropped

__all__ = [
    "ASK_TIMEOUT_S",
    "EXIT_MARGIN_S",
    "ProcessState",
    "ask",
    "count_of",
    "drop",
    "overflow",
    "overflowed",
    "state",
]

logger = logging.getLogger("actors")

ASK_TIMEOUT_S = 2.0
EXIT_MARGIN_S = 0.1


class ProcessState:
    """Process-wide state of the facade; reset in a forked child."""

    def __init__(self) -> None:
        # Guards the lazy start of the registry and pool, on the connect() path, never on tell().
        self.lock = threading.Lock()
        self.registry: pykka.ActorRef[Any] | None = None
        self.pool: Any = None
        self.epoch = 0
        # The largest shutdown timeout of any connection opened; None until one is.
        self.shutdown_timeout_s: float | None = None
        self.exit_hook = False
        self.last_report: dict[str, Any] | None = None
        # Events told with no registry to count them: next() on a C counter is atomic, no lock.
        self.unrouted = itertools.count()
        # Events a full lane refused, per host: counted on the driver's thread without a message
        # (a flood must not move its backlog into the registry's inbox); read by dump_state.
        self.overflowed: dict[str, itertools.count[int]] = {}


state = ProcessState()


def count_of(counter: itertools.count[int]) -> int:
    """The next value an `itertools.count` would yield, without taking it."""
    return int(repr(counter)[len("count(") : -1])


def _after_fork_in_child() -> None:
    """The parent's threads do not exist here: forget its actors and sockets."""
    state.lock = threading.Lock()
    state.registry = None
    state.pool = None
    state.overflowed = {}
    state.epoch += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def ask(ref: pykka.ActorRef[Any], message: Any, timeout_s: float) -> Any:
    """Ask with a timeout (only the facade asks; actors never do)."""
    return ref.ask(message, timeout=timeout_s)


def drop(host: str, reason: str, count: int = 1) -> None:
    """Count `count` events the facade could not hand to a tree; never raises."""
    try:
        registry = state.registry
        if registry is not None:
            registry.tell(FacadeDropped(host=host, reason=reason, count=count))
            return
    except Exception:
        logger.debug("telemetry: could not count a %s drop", reason)
    for _ in range(count):  # no registry (after shutdown): an atomic count, read by dump_state
        next(state.unrouted)


def overflow(host: str) -> None:
    """Count one event refused by a full lane: an atomic count, no lock and no message."""
    counter = state.overflowed.get(host)
    if counter is None:  # setdefault with a str key is atomic: racing first drops share one
        counter = state.overflowed.setdefault(host, itertools.count())
    next(counter)


def overflowed() -> dict[str, int]:
    """Events refused by full lanes so far, per host."""
    return {host: count_of(counter) for host, counter in list(state.overflowed.items())}
