"""A few driver threads, each holding its own state (a connection), running jobs on command."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from _common import thread_cpu_ns

JOB_TIMEOUT_S = 120.0

Job = Callable[[dict[str, Any]], None]


class Crew:
    """`threads` daemon threads, each with its own state (a connection), running jobs on command."""

    def __init__(self, opener: Callable[[int], dict[str, Any]], closer: Job, threads: int) -> None:
        self._inboxes: list[queue.SimpleQueue[Job | None]] = []
        self._done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._threads = []
        for index in range(threads):
            inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._loop, args=(index, opener, closer, inbox), daemon=True
            )
            self._inboxes.append(inbox)
            self._threads.append(thread)
            thread.start()
        self._wait(JOB_TIMEOUT_S)  # every connection opened

    def _loop(
        self,
        index: int,
        opener: Callable[[int], dict[str, Any]],
        closer: Job,
        inbox: queue.SimpleQueue[Job | None],
    ) -> None:
        try:
            state = opener(index)
        except BaseException as exc:  # reported on the main thread
            self._done.put(exc)
            return
        self._done.put(None)
        while True:
            job = inbox.get()
            if job is None:
                break
            try:
                job(state)
                self._done.put(None)
            except BaseException as exc:
                self._done.put(exc)
        try:
            closer(state)
        finally:
            self._done.put(None)

    def _wait(self, timeout_s: float) -> None:
        first: BaseException | None = None
        for _ in self._threads:
            try:
                outcome = self._done.get(timeout=timeout_s)
            except queue.Empty:
                raise TimeoutError(f"a driver thread did not finish within {timeout_s} s") from None
            first = first or outcome
        if first is not None:
            raise first

    def cpu_ns(self) -> int:
        """CPU time the crew's threads have used so far (Linux schedstat; -1 if unknown)."""
        total = 0
        for thread in self._threads:
            used = thread_cpu_ns(thread.native_id) if thread.native_id is not None else -1
            if used < 0:
                return -1
            total += used
        return total

    def run(self, job: Job) -> None:
        """Every thread runs `job` on its state; returns when all have (raises the first error)."""
        for inbox in self._inboxes:
            inbox.put(job)
        self._wait(JOB_TIMEOUT_S)

    def close(self) -> None:
        """Close every thread's state and end the threads, boundedly."""
        for inbox in self._inboxes:
            inbox.put(None)
        self._wait(JOB_TIMEOUT_S)
        for thread in self._threads:
            thread.join(JOB_TIMEOUT_S)
