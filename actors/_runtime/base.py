"""The guarded actor base: a handler bug is counted and logged at DEBUG, never fatal."""

from __future__ import annotations

import contextlib
import logging
import queue
from typing import Any

import pykka

__all__ = ["GuardedActor"]

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
        """Dispatch to `handle`, swallowing (and counting) whatever it raises.

        `BaseException` included: a handler reaches the application's code (its logging
        handlers, through ours and our dependencies' loggers), and pykka answers a
        `BaseException` on an actor thread by stopping every actor in the process.
        """
        try:
            return self.handle(message)
        except BaseException:
            self.handler_errors += 1
            with contextlib.suppress(BaseException):  # the same handlers may raise again
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
