"""AggregatorActor: one frontend log per statement, batched per connection, with exact accounts.

Driver events arrive through the host's `EventLane`; the actor takes them before each message it
handles. Its parts are plain and tested on their own: a `Folder` folds events into logs, an
`ExportQueue` holds logs and bounds the batches at the exporter, the `Ledger` counts, and a
`DrainState` holds the final drain's phase. At every message boundary
``received == exported + sum(dropped) + pending`` holds, and its snapshot says so.
"""

from __future__ import annotations

import collections
import logging
import math
import time
import typing
from typing import Any

from actors._aggregate.batching import ExportQueue
from actors._aggregate.drain import DrainState, Phase
from actors._aggregate.folding import Emitted, Folder
from actors._aggregate.ledger import Ledger, Place
from actors._aggregate.slicing import fold_slice
from actors._aggregate.statements import build_log
from actors._aggregate.validation import invalid_reason
from actors._runtime.base import GuardedActor
from actors._runtime.lane import LANE_WAKE, EventLane, ExpressInbox, LaneItem
from actors._runtime.timer import Timer
from messages.accounts import Accounts
from messages.commands import (
    Abandon,
    BatchSettled,
    Drain,
    Drained,
    DumpState,
    FlagDecided,
    Flush,
    FlushTick,
    Teller,
)
from messages.config import TelemetrySettings

__all__ = ["AggregatorActor"]

logger = logging.getLogger("actors.aggregator")

# While driver events keep arriving the aggregator looks at its lane this often, so driver
# threads need not wake it per event; a quiet lane goes back to being woken by the next one.
_LANE_INTERVAL_S = 0.005


class _LaneTick:
    """Timer fact: look at the lane again."""


class _LaneSlice:
    """Timer fact, told with no delay: fold the lane's next slice (other threads ran between)."""


_LANE_FACTS = (_LaneTick, _LaneSlice)


class AggregatorActor(GuardedActor):
    """Folds one host's events into logs and batches them to the exporter."""

    @staticmethod
    def _create_actor_inbox() -> Any:
        return ExpressInbox()

    def __init__(
        self,
        *,
        settings: TelemetrySettings,
        exporter: Teller,
        timer: Timer,
        wall_clock: Any = time.time,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._exporter = exporter
        self._timer = timer
        self._wall_clock = wall_clock
        self._flag: bool | None = None
        self._ledger = Ledger()
        self._stats: collections.Counter[str] = collections.Counter()
        self._logs: collections.Counter[str] = collections.Counter()
        self._folder = Folder(
            self._ledger, settings.max_pending_statements, self._stats, settings.error_text
        )
        self._queue = ExportQueue(self._ledger, settings)
        self._exported_logs = 0
        self._drain = DrainState()
        self._tick: Any = None
        self._lane_tick_pending = False
        self._slice_pending = False
        # Backpressure: the lane is folded only as far as the export queue has room for logs;
        # the rest waits in the lane (bounded by its capacity) until a batch settles.
        self._lane_blocked = False
        self._taken = 0  # lane items taken so far
        self._flush_until = 0  # a flush waits until the lane is taken this far
        self._held_flushes: list[Flush] = []  # told before the flag was known
        self._forward: list[Flush | Drain] = []  # for the exporter once the queue is empty
        ref = self.actor_ref
        self._lane = EventLane(settings.lane_capacity, lambda: ref.tell(LANE_WAKE))
        typing.cast(ExpressInbox, self.actor_inbox).lane = self._lane

    def on_start(self) -> None:
        """Start the flush interval timer."""
        self._schedule_tick()

    def on_stop(self) -> None:
        """Refuse events from now on; any still in the lane are counted as `after_shutdown`."""
        self._receive_all(self._lane.close())

    def handle(self, message: Any) -> Any:
        if message is LANE_WAKE or type(message) in _LANE_FACTS:
            self._after_lane(message)
            return None
        result = self._command(message)
        if self._lane_blocked and self._room() > 0:  # a batch settled, or the queue was emptied
            self._lane_blocked = False
            self._after_lane(None)
        return result

    def _command(self, message: Any) -> Any:
        match message:
            case FlushTick():
                self._on_tick()
            case BatchSettled():
                self._on_settled(message)
            case FlagDecided(enabled=enabled):
                self._on_flag(enabled)
            case Flush():
                # It goes on once every event told before it is folded and queued logs are out.
                self._flush_until = self._taken + len(self._lane)
                self._fold_what_fits()
                self._on_flush(message)
            case Drain():
                self._receive_all(self._lane.take())  # the final drain folds all, room or not
                self._on_drain(message)
            case Drained(snapshot=exporter_final, breaker=breaker):
                self._drain.breaker = breaker
                self._finish_drain(exporter_final)
            case Abandon():
                self._on_abandon()
            case DumpState():
                self._fold_what_fits()  # what does not fit is shown as pending in the lane
                return self.snapshot()
            case _:  # not a command of this actor, and not a driver event either
                self._stats["unknown_commands"] += 1
                logger.debug("aggregator: ignored an unknown %s", type(message).__name__)
        return None

    # --- events -----------------------------------------------------------------------------

    def _fold_what_fits(self) -> None:
        """Fold the lane now, as far as the export queue has room."""
        if len(self._lane) and fold_slice(self._lane, self._receive_all, self._room, math.inf):
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Events still wait in the lane: if the export queue is full, they wait for a batch to
        settle (`handle` resumes the folding then)."""
        if self._room() <= 0 and not self._lane_blocked:
            self._lane_blocked = True
            self._stats["lane_waits_for_room"] += 1

    def _room(self) -> int:
        """Logs the export queue can still take."""
        return self._settings.max_queued_logs - len(self._queue.logs)

    def _receive_all(self, items: list[LaneItem]) -> int:
        self._taken += len(items)
        for context, event in items:
            self._ledger.receive()
            try:
                self._on_event(context, event)
            except Exception:  # a bug: count the event as dropped so the accounts balance
                self._ledger.drop_unplaced("handler_error")
                self.handler_errors += 1
                logger.debug("aggregator: handler error on an event", exc_info=True)
        return len(items)

    def _after_lane(self, message: object) -> None:
        """Fold one slice of the lane; keep looking while events arrive; when it is quiet, be
        woken again. A slice ends after its time budget (`slicing`): the rest waits for a
        zero-delay timer message, so driver threads get the GIL in between. A slice that
        filled the export queue leaves the rest in the lane until a batch settles."""
        if type(message) is _LaneTick:
            self._lane_tick_pending = False
        elif type(message) is _LaneSlice:
            self._slice_pending = False
        lane = self._lane
        if not len(lane) and lane.quiet():
            return
        if fold_slice(lane, self._receive_all, self._room):
            self._wait_for_room()
            if not self._lane_blocked and not self._slice_pending:
                self._slice_pending = True
                self._stats["lane_slices_deferred"] += 1
                self._timer.schedule(0.0, self.actor_ref, _LaneSlice())
        elif not self._lane_tick_pending:
            self._lane_tick_pending = True
            self._timer.schedule(_LANE_INTERVAL_S, self.actor_ref, _LaneTick())
        if self._forward:  # a flush that waited for the lane may go on now
            self._send_batches()

    def _on_event(self, context: Any, event: object) -> None:
        reason = invalid_reason(event)
        if reason is not None:
            self._ledger.drop("invalid_event")
            self._stats[f"invalid_{reason}"] += 1
        elif self._flag is False:
            self._ledger.drop("flag_off")
        elif self._drain.phase is not Phase.RUNNING:
            self._ledger.drop("after_shutdown")
        else:
            for emitted in self._folder.fold(context, event):
                self._emit(emitted)

    def _emit(self, emitted: Emitted) -> None:
        self._logs[emitted.kind.value] += 1
        if self._flag is False:
            self._ledger.drop("flag_off", emitted.events, Place.OPEN if emitted.held else None)
            return
        now_ms = int(self._wall_clock() * 1000)
        log = build_log(emitted.context, emitted.kind, emitted.log, now_ms)
        added = self._queue.add(emitted.context, log, emitted.events, emitted.held)
        if added and self._flag and self._queue.full_batches():
            self._send_batches()

    # --- flag, flushes and batches ----------------------------------------------------------

    def _on_flag(self, enabled: bool) -> None:
        self._flag = enabled
        if not enabled:  # nothing will be sent: open statements go too, or they wait forever
            for emitted in self._folder.finish_all():
                self._emit(emitted)
            self._queue.drop_all("flag_off")
        self._forward[:0] = self._held_flushes  # a flush that waited for the flag goes now
        self._held_flushes.clear()
        if self._drain.phase is Phase.AWAITING_FLAG:
            self._export_and_drain()
        self._send_batches()

    def _on_flush(self, flush: Flush) -> None:
        if self._flag is None and self._queue.logs:  # nothing can go before the flag is known
            self._held_flushes.append(flush)
            return
        self._forward.append(flush)
        self._send_batches()

    def _send_batches(self, force: bool = False) -> None:
        """Hand batches to the exporter, never more than `max_pending_batches` unsettled.

        While a flush or the drain waits, what is handed over is pushed past the rate limit,
        and the waiting commands go on to the exporter once nothing is left queued here.
        A backed-up exporter gets fewer, larger batches (`ExportQueue.take`) unless `force`d.
        """
        force = force or bool(self._forward)
        batches = self._queue.take(self.actor_ref, force) if self._flag else []
        for batch in batches:
            self._exporter.tell(batch)
        lane_due = self._taken < self._flush_until  # events told before a flush still in the lane
        if self._forward and (self._queue.logs or lane_due):  # more to come: push what it has
            self._exporter.tell(Flush(reply=None))
        if not self._queue.logs and not lane_due:
            for command in self._forward:
                self._exporter.tell(command)
            self._forward.clear()

    def _on_settled(self, settled: BatchSettled) -> None:
        if self._queue.settle(settled):
            self._exported_logs += settled.exported_logs
            self._send_batches()  # logs held back for want of room may go now

    def _on_tick(self) -> None:
        self._schedule_tick()
        self._send_batches(force=True)

    def _schedule_tick(self) -> None:
        self._tick = self._timer.schedule(
            self._settings.flush_interval_s, self.actor_ref, FlushTick()
        )

    # --- final drain ------------------------------------------------------------------------

    def _on_drain(self, message: Drain) -> None:
        if self._drain.phase is not Phase.RUNNING:
            return
        self._drain.notify, self._drain.deadline_s = message.notify, message.deadline_s
        if self._tick is not None:
            self._tick.cancel()
        for emitted in self._folder.finish_all():
            self._emit(emitted)
        if self._flag is None:  # a short-lived process: wait for the flag, up to the deadline
            self._drain.phase = Phase.AWAITING_FLAG
            return
        self._export_and_drain()

    def _export_and_drain(self) -> None:
        self._drain.phase = Phase.DRAINING
        self._forward.append(Drain(deadline_s=self._drain.deadline_s, notify=self.actor_ref))
        self._send_batches()

    def _on_abandon(self) -> None:
        """The deadline passed: whatever is still queued or at the exporter is dropped now."""
        self._queue.drop_all("flag_unknown" if self._flag is None else "shutdown_timeout")
        for held in [*self._held_flushes, *self._forward]:
            if isinstance(held, Flush) and held.reply is not None:
                held.reply.set(False)
        self._held_flushes.clear()
        self._forward.clear()
        self._queue.abandon_in_export("shutdown_timeout")
        self._finish_drain()

    def _finish_drain(self, exporter_final: Any = None) -> None:
        if exporter_final is not None:
            self._drain.exporter_final = exporter_final
        notify = self._drain.notify
        if notify is None or self._drain.phase is Phase.CLOSED:
            return
        self._drain.phase = Phase.CLOSED
        # Close the lane before the final accounts: later events are counted by the facade,
        # and those already in it are received here (as after_shutdown) and so in the accounts.
        self._receive_all(self._lane.close())
        final = self.snapshot()
        if self._drain.exporter_final is not None:
            final["exporter"] = dict(self._drain.exporter_final)
        notify.tell(Drained(snapshot=final, breaker=self._drain.breaker))

    def snapshot(self) -> dict[str, Any]:
        """The host's accounts (one `Accounts` record) and buffers. Events still in the lane
        count as received and pending: told, not yet folded."""
        accounts = self._ledger.accounts()
        lane = len(self._lane)
        if lane:
            accounts = accounts.plus(
                Accounts.of(received=lane, exported=0, dropped={}, pending=lane)
            )
        return {
            "accounts": accounts,
            "pending_detail": self._ledger.pending_detail(),
            "open_statements": len(self._folder.statements),
            "queued_logs": len(self._queue.logs),
            "in_flight_batches": len(self._queue.in_export),
            "exported_logs": self._exported_logs,
            "logs_emitted": dict(self._logs),
            "flag": {None: "unknown", True: "on", False: "off"}[self._flag],
            "phase": self._drain.phase.value,
            "lane_events": lane,
            "stats": dict(self._stats),
            "handler_errors": self.handler_errors,
        }
