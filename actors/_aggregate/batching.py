"""Queued logs and their batching for export: by shared credentials, at most `batch_size` each."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Generator
from typing import Any

from actors._aggregate.ledger import Ledger, Place
from actors._runtime.contain import FAILED, call_user
from messages.commands import BatchSettled, ConnectionContext, ExportBatch, Teller
from messages.config import TelemetrySettings
from messages.records import FrontendLog

__all__ = ["Batch", "ExportQueue", "Queued", "credential_key", "take_batches"]

Queued = tuple[ConnectionContext, FrontendLog, int]
"""A queued log: its connection, the log, and how many told events it stands for."""
Batch = tuple[ConnectionContext, list[tuple[FrontendLog, int]]]


def credential_key(context: ConnectionContext) -> tuple[Any, ...]:
    """Connections with the same key send with the same credentials and headers now.

    The key holds the auth headers' current value, so connections whose providers are different
    objects (an auth lambda per connection) but answer the same credentials share batches, and
    different credentials never do. A provider that fails (contained, whatever it raises) keys
    by its own identity: its logs never join another's batch.
    """
    auth: Any = None
    if context.auth is not None:
        provider = context.auth
        auth = call_user(lambda: tuple(sorted((str(k), str(v)) for k, v in provider().items())))
        if auth is FAILED:
            auth = ("failed", id(provider))
    return (auth, context.workspace_id, context.user_agent)


def take_batches(
    queue: collections.deque[Queued], size: int, whole_only: bool = False
) -> Generator[Batch, None, None]:
    """Empty `queue` into batches of at most `size` logs that share credentials.

    Logs are grouped by `credential_key` (each provider asked once per call, just before the
    batches go to the exporter), workspace and user agent. A caller that closes the generator
    early leaves what it did not take queued, in order; so does `whole_only` with the groups
    that did not reach `size`.
    """
    groups: dict[Any, Batch] = {}
    # For this call: one ask per provider, however many connections share it. Every provider
    # here was alive when the call began (its context was queued), so no two share an id.
    keys: dict[tuple[int, int | None, str], tuple[Any, ...]] = {}
    try:
        while queue:
            context, log, events = queue.popleft()
            asked = (id(context.auth), context.workspace_id, context.user_agent)
            key = keys.get(asked)
            if key is None:
                key = keys[asked] = credential_key(context)
            group = groups.get(key)
            if group is None:
                group = groups[key] = (context, [])
            group[1].append((log, events))
            if len(group[1]) >= size:
                yield groups.pop(key)
        while groups and not whole_only:
            yield groups.pop(next(iter(groups)))
    finally:
        for context, items in reversed(groups.values()):
            for log, events in reversed(items):
                queue.appendleft((context, log, events))


class ExportQueue:
    """Queued logs and the batches the exporter has not settled: the one bound on both.

    Confined to the aggregator's thread. At most `max_queued_logs` logs wait (more are dropped as
    `queue_full`) and at most `max_pending_batches` batches are unsettled at once, flush or not;
    what does not fit waits here until a batch settles, so a flush never turns logs into drops.
    """

    def __init__(self, ledger: Ledger, settings: TelemetrySettings) -> None:
        self._ledger = ledger
        self._settings = settings
        self.logs: collections.deque[Queued] = collections.deque()
        self.in_export: dict[int, int] = {}
        self._export_logs: dict[int, int] = {}  # logs per unsettled batch
        self._batch_ids = itertools.count(1)

    def add(self, context: ConnectionContext, log: FrontendLog, events: int, held: bool) -> bool:
        """Queue one log standing for `events` told events (`held`: they waited as `OPEN`)."""
        source = Place.OPEN if held else None
        if len(self.logs) >= self._settings.max_queued_logs:
            self._ledger.drop("queue_full", events, source)
            return False
        self.logs.append((context, log, events))
        if source is None:
            self._ledger.hold(Place.QUEUED, events)
        else:
            self._ledger.move(source, Place.QUEUED, events)
        return True

    def drop_all(self, reason: str) -> None:
        """Drop every queued log (the flag is off, or was never known)."""
        while self.logs:
            _, _, events = self.logs.popleft()
            self._ledger.drop(reason, events, Place.QUEUED)

    def abandon_in_export(self, reason: str) -> None:
        """Batches the exporter will not settle in time count as dropped now."""
        for events in self.in_export.values():
            self._ledger.drop(reason, events, Place.IN_EXPORT)
        self.in_export.clear()
        self._export_logs.clear()

    @property
    def room(self) -> int:
        """How many more batches may be handed to the exporter now."""
        return self._settings.max_pending_batches - len(self.in_export)

    def full_batches(self) -> bool:
        """Whether a whole batch waits."""
        return len(self.logs) >= self._settings.batch_size

    def backed_up(self) -> bool:
        """Whether half the exporter's batches (two at least) are unsettled: the rate limit
        holds them back."""
        return len(self.in_export) >= max(2, (self._settings.max_pending_batches + 1) // 2)

    def take(self, reply_to: Teller, force: bool = False) -> list[ExportBatch]:
        """Batches to hand to the exporter now, as many as `room` allows.

        While the exporter is `backed_up()`, only whole batches go (unless `force`: a flush, the
        drain, the interval), so every unsettled slot carries `batch_size` logs and the exporter,
        which merges what waits into one request, can hold all it may; the rest waits here. A
        forced take while backed up sends one batch of up to `max_queued_logs`, which the
        exporter cuts at its body cap. The exporter never holds more than ``max_pending_batches x
        batch_size`` logs in all, so the tree's bound on held events stays what it was.
        """
        out: list[ExportBatch] = []
        settings = self._settings
        budget = settings.max_pending_batches * settings.batch_size - sum(
            self._export_logs.values()
        )
        coalesce = self.backed_up()
        whole_only = coalesce and not force
        size = settings.max_queued_logs if coalesce and force else settings.batch_size
        if not whole_only:
            size = min(size, budget)  # no batch takes the exporter past its bound
        if self.room <= 0 or not self.logs or size <= 0 or budget < size:
            return out
        batches = take_batches(self.logs, size, whole_only=whole_only)
        for context, items in batches:
            batch_id = next(self._batch_ids)
            counts = tuple(n for _, n in items)
            self.in_export[batch_id] = sum(counts)
            self._export_logs[batch_id] = len(items)
            budget -= len(items)
            self._ledger.move(Place.QUEUED, Place.IN_EXPORT, sum(counts))
            logs = tuple(log for log, _ in items)
            out.append(
                ExportBatch(
                    batch_id=batch_id,
                    context=context,
                    logs=logs,
                    event_counts=counts,
                    reply_to=reply_to,
                )
            )
            if self.room <= 0 or budget < size or (coalesce and force):
                batches.close()  # what it did not hand out goes back to the queue
                break
        return out

    def settle(self, settled: BatchSettled) -> bool:
        """Count a settled batch; False if it was already abandoned (and counted)."""
        events = self.in_export.pop(settled.batch_id, None)
        self._export_logs.pop(settled.batch_id, None)
        if events is None:
            return False
        self._ledger.export(settled.exported_events)
        for reason, dropped in settled.dropped.items():
            self._ledger.drop(reason, dropped, Place.IN_EXPORT)
        return True
