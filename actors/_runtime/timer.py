"""One timer thread per host tree: delivers messages to actors later, so no actor ever sleeps."""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Any

from messages.commands import Teller

__all__ = ["Timer", "TimerHandle"]

logger = logging.getLogger("actors.timer")


class TimerHandle:
    """A scheduled delivery; `cancel()` is a single attribute write, safe from any thread."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        """The message will not be delivered (if it has not been already)."""
        self.cancelled = True


_STOP = object()


class Timer:
    """A daemon thread owning a heap of due deliveries; callers only `put` to its queue.

    The heap is confined to the timer thread, so no lock is needed. A delivery to an actor that
    has stopped is dropped quietly.
    """

    def __init__(self, name: str) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._seq = itertools.count()
        self._thread = threading.Thread(
            target=self._run, name=f"telemetry-timer-{name}", daemon=True
        )
        self._thread.start()

    def schedule(self, delay_s: float, target: Teller, message: Any) -> TimerHandle:
        """Tell `message` to `target` after `delay_s` seconds. Safe from any thread."""
        handle = TimerHandle()
        self._inbox.put(
            (time.monotonic() + max(0.0, delay_s), next(self._seq), handle, target, message)
        )
        return handle

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread (pending deliveries are dropped) and wait for it, boundedly."""
        self._inbox.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        """Whether the timer thread is running."""
        return self._thread.is_alive()

    def _run(self) -> None:
        heap: list[tuple[float, int, TimerHandle, Teller, Any]] = []
        while True:
            timeout = None
            if heap:
                timeout = max(0.0, heap[0][0] - time.monotonic())
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is not None:
                heapq.heappush(heap, item)
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                _, _, handle, target, message = heapq.heappop(heap)
                if handle.cancelled:
                    continue
                try:
                    target.tell(message)
                except Exception:  # a stopped actor: nothing to deliver to
                    logger.debug("timer: dropped %r for a stopped actor", type(message))
