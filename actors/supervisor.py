"""HostSupervisor: the root of one host's tree. Starts its three children and its timer,
relays connections to the flag fetcher, and on `Stop` drains and stops the whole tree, boundedly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import attrs
import pykka

from actors._runtime.base import GuardedActor
from actors._runtime.process import Holders
from actors._runtime.timer import Timer
from actors.aggregator import AggregatorActor
from actors.exporter import ExporterActor, StopSignal
from actors.feature_flags import FeatureFlagActor, FlagView
from messages.commands import (
    Abandon,
    ConnectionContext,
    Drain,
    Drained,
    DumpState,
    Reply,
    Stop,
    Teller,
    TreeConfig,
    TreeStopped,
    UseConnection,
)
from messages.snapshots import BreakerSnapshot, TreeFinal

__all__ = ["HostSupervisor", "HostTree", "TreeConfig", "start_tree"]

logger = logging.getLogger("actors.supervisor")

_FINALIZE_GRACE_S = 0.05


@attrs.frozen(kw_only=True)
class HostTree:
    """References to one host's actors (for telling and for state dumps)."""

    generation: int
    supervisor: pykka.ActorRef[Any]
    feature_flags: pykka.ActorRef[Any]
    aggregator: pykka.ActorRef[Any]
    exporter: pykka.ActorRef[Any]
    flag: FlagView
    # Set once, by the supervisor, when the tree has stopped: whoever holds the tree can wait.
    final: pykka.ThreadingFuture[TreeFinal] = attrs.field(factory=pykka.ThreadingFuture)


class _Finalize:
    """Timer fact: stop now, whether or not the drain reported."""


class HostSupervisor(GuardedActor):
    """Owns one host's FeatureFlagActor, AggregatorActor, ExporterActor and timer."""

    def __init__(
        self,
        *,
        host: str,
        generation: int,
        registry: Teller,
        timer: Timer,
        children: tuple[pykka.ActorRef[Any], ...],
        flag_actor: pykka.ActorRef[Any],
        aggregator: pykka.ActorRef[Any],
        stop_signal: StopSignal | None = None,
        final: Reply | None = None,
    ) -> None:
        super().__init__()
        self._host = host
        self._stop_signal = stop_signal
        self._generation = generation
        self._registry = registry
        self._timer = timer
        self._children = children
        self._flag_actor = flag_actor
        self._aggregator = aggregator
        self._replies: list[Reply] = [] if final is None else [final]
        self._stopping_since: float | None = None
        self._finished = False

    def handle(self, message: Any) -> Any:
        match message:
            case UseConnection():
                self._flag_actor.tell(message)
            case Stop(deadline_s=deadline_s, reply=reply):
                if reply is not None:
                    self._replies.append(reply)
                if self._stopping_since is None:
                    self._stopping_since = time.monotonic()
                    if self._stop_signal is not None:  # ahead of the exporter's inbox
                        self._stop_signal.deadline_s = deadline_s
                    self._aggregator.tell(Drain(deadline_s=deadline_s, notify=self.actor_ref))
                    remaining = deadline_s - time.monotonic()
                    self._timer.schedule(remaining, self.actor_ref, Abandon())
            case Abandon():
                self._aggregator.tell(message)
                # The grace starts now, not at the deadline: a timer running late (a busy GIL)
                # would otherwise deliver both at once and lose the aggregator's final accounts.
                self._timer.schedule(_FINALIZE_GRACE_S, self.actor_ref, _Finalize())
            case Drained(snapshot=snapshot, breaker=breaker):
                self._finish(snapshot, breaker)
            case _Finalize():
                self._finish(None)
            case DumpState():
                return self.snapshot()
            case _:
                logger.debug("supervisor: unexpected message %r", type(message))
        return None

    def _finish(
        self, snapshot: Mapping[str, Any] | None, breaker: BreakerSnapshot | None = None
    ) -> None:
        if self._finished:
            return
        self._finished = True
        final = TreeFinal(generation=self._generation, snapshot=snapshot, breaker=breaker)
        for child in self._children:
            child.stop(block=False)
        self._timer.stop(timeout_s=0.0)
        try:
            self._registry.tell(TreeStopped(host=self._host, final=final))
        except Exception:  # the registry is gone (a shutdown): this tree still stops
            logger.debug("supervisor: no registry to tell that %s stopped", self._host)
        for reply in self._replies:
            reply.set(final)
        self.actor_ref.stop(block=False)

    def snapshot(self) -> dict[str, Any]:
        """Generation, whether it is stopping, and whether its threads are alive."""
        return {
            "generation": self._generation,
            "stopping": self._stopping_since is not None,
            "children_alive": sum(child.is_alive() for child in self._children),
            "timer_alive": self._timer.alive,
            "handler_errors": self.handler_errors,
        }


def start_tree(
    config: TreeConfig,
    generation: int,
    registry: Teller,
    first: ConnectionContext,
    cached_flag: FlagView | None = None,
    breaker_state: BreakerSnapshot | None = None,
    holders: Holders | None = None,
) -> HostTree:
    """Start a host's exporter, aggregator, flag fetcher and supervisor (in that order).

    `cached_flag` is the previous tree's flag view: a decision still within its TTL is reused;
    `breaker_state` is the previous tree's final breaker snapshot: the breaker is per host;
    `holders` are the tree's connections (the flag fetcher reads the newest one's context).
    """
    timer = Timer(f"{config.address.key}#{generation}")
    view = FlagView(cached_flag)
    stop_signal = StopSignal()
    exporter = ExporterActor.start(
        base_url=config.address.base_url,
        settings=config.settings,
        transport=config.transport,
        timer=timer,
        breaker_state=breaker_state,
        stop_signal=stop_signal,
    )
    aggregator = AggregatorActor.start(settings=config.settings, exporter=exporter, timer=timer)
    flags = FeatureFlagActor.start(
        base_url=config.address.base_url,
        settings=config.settings,
        transport=config.transport,
        timer=timer,
        aggregator=aggregator,
        view=view,
        context=first,
        driver_version=config.driver_version,
        holders=holders,
    )
    final: pykka.ThreadingFuture[TreeFinal] = pykka.ThreadingFuture()
    supervisor = HostSupervisor.start(
        host=config.address.key,
        generation=generation,
        registry=registry,
        timer=timer,
        children=(flags, aggregator, exporter),
        flag_actor=flags,
        aggregator=aggregator,
        stop_signal=stop_signal,
        final=final,
    )
    return HostTree(
        generation=generation,
        supervisor=supervisor,
        feature_flags=flags,
        aggregator=aggregator,
        exporter=exporter,
        flag=view,
        final=final,
    )
