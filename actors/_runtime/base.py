"""The guarded actor base: a handler bug is counted and logged at DEBUG, never fatal."""

from __future__ import annotations

import collections
import logging
import queue
from typing import Any

import pykka

__all__ = ["LANE_WAKE", "ExpressInbox", "GuardedActor"]

logger = logging.getLogger("actors")


class GuardedActor(pykka.ThreadingActor):
    """A daemon-thread pykka actor whose `handle` may raise without stopping the actor.

    pykka stops an actor whose `tell` handler raises and silently discards its inbox; here the
    exception is caught, counted as `handler_errors` and logged at DEBUG, and the actor carries on.
    """

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> Any:
        # A C-implemented SimpleQueue: `tell()` from driver threads costs a fraction of what
        # queue.Queue's lock and condition cost. pykka only needs put/get/empty from it.
        return queue.SimpleQueue()

    def __init__(self) -> None:
        super().__init__()
        self.handler_errors = 0

    def on_receive(self, message: Any) -> Any:
        """Dispatch to `handle`, swallowing (and counting) any `Exception` it raises."""
        try:
            return self.handle(message)
        except Exception:
            self.handler_errors += 1
            logger.debug(
                "%s: handler error on %r", type(self).__name__, type(message), exc_info=True
            )
            return None

    def handle(self, message: Any) -> Any:
        """Handle one message; subclasses narrow it with a single `match`."""
        raise NotImplementedError

    def on_failure(self, *args: Any) -> None:
        """Only reached for errors outside `handle` (e.g. in pykka itself): log at DEBUG."""
        logger.debug("%s: actor failure", type(self).__name__, exc_info=args or None)


class ExpressInbox(queue.SimpleQueue[Any]):
    """An actor inbox with an express lane for driver events.

    Driver threads append ``(context, event)`` to `events`, a C deque whose append is atomic under
    the GIL: no lock, no Envelope, and no wake-up of the actor per event. A driver wakes the actor
    (by telling it `LANE_WAKE`) only when `scheduled` is False; while events keep coming the
    actor keeps `scheduled` set and looks at the lane on a short timer instead. The actor drains
    the lane before every message it handles, so a flush, dump or drain told after an event
    always sees it. `closed` is set when the actor stops: later events are counted as dropped
    instead of waiting in a lane nobody reads.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: collections.deque[Any] = collections.deque()
        self.scheduled = False
        self.closed = False


class _LaneWake:
    """Told by a driver thread: events wait in the express lane."""

    __slots__ = ()


LANE_WAKE = _LaneWake()
