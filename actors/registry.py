"""RegistryActor: the process-wide reference count of host trees, kept as messages.

Connects and disconnects for all hosts are serialised through this one inbox, so a connect racing
the last disconnect of the same host never sees a half-stopped tree. After its last disconnect a
tree lingers for `telemetry.idle_linger_ms` (a timer fact, `LingerEnded`): a connect within it
reuses the tree; after it the tree is detached, drains and stops on its own, boundedly, and the
next connect starts a fresh one. A stopped tree's final accounts are folded into its host's
`HostHistory`, so memory stays bounded however many trees come and go. Nothing here blocks.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import time
from typing import Any

import attrs

from actors._runtime.base import GuardedActor
from actors._runtime.process import FastLease, Holders, count_of, state
from actors._runtime.timer import Timer, TimerHandle
from actors.feature_flags import FlagView
from actors.supervisor import HostTree, TreeConfig, start_tree
from messages.accounts import Accounts
from messages.commands import (
    Connect,
    Disconnect,
    FacadeDropped,
    HostLease,
    LingerEnded,
    ListHosts,
    RestoreBreaker,
    ShutdownAll,
    Stop,
    TreeStopped,
    UseConnection,
)
from messages.snapshots import (
    RECENT_FINALS,
    BreakerSnapshot,
    HostHistory,
    HostListing,
    ListedTree,
    TreeFinal,
)

__all__ = ["MAX_HOSTS_REMEMBERED", "HostEntry", "RegistryActor"]

logger = logging.getLogger("actors.registry")

# Process-wide, so a lease from before a shutdown never matches a tree started after it.
_GENERATIONS = itertools.count(1)

_REUSE_MARGIN_S = 0.5

MAX_HOSTS_REMEMBERED = 1000
"""Hosts whose history is kept; older ones fold into one process-wide `forgotten` total."""


@attrs.define
class HostEntry:
    """A live host: its tree, its settings, who holds a lease, and its linger, if idle."""

    tree: HostTree
    config: TreeConfig
    holders: Holders
    lease: HostLease
    linger: TimerHandle | None = None
    linger_until: float = 0.0  # monotonic: when `linger` is due

    @property
    def connections(self) -> set[int]:
        """Ids of the connections holding a lease (some joined on their own threads)."""
        return self.holders.ids

    def counts(self) -> tuple[int, int]:
        """Connects and disconnects through the published lease that sent no message."""
        return count_of(self.holders.connects), count_of(self.holders.disconnects)


class RegistryActor(GuardedActor):
    """Starts a host's tree on its first connect and stops it once idle past its linger."""

    def __init__(self) -> None:
        super().__init__()
        self._hosts: dict[str, HostEntry] = {}
        self._stopping: dict[tuple[str, int], HostTree] = {}
        self._history: collections.OrderedDict[str, HostHistory] = collections.OrderedDict()
        self._forgotten = Accounts()
        self._forgotten_hosts = 0
        self._flag_cache: dict[str, FlagView] = {}
        self._breakers: dict[str, BreakerSnapshot] = {}
        self._timer: Timer | None = None
        self._closed = False
        self._connects = 0
        self._disconnects = 0

    def on_stop(self) -> None:
        """The linger timer's thread ends with the registry."""
        if self._timer is not None:
            self._timer.stop(timeout_s=0.5)

    def handle(self, message: Any) -> Any:
        match message:
            case Connect():
                return self._connect(message)
            case Disconnect():
                self._disconnect(message)
            case LingerEnded(host=host, generation=generation):
                entry = self._hosts.get(host)
                if entry is None or entry.tree.generation != generation or entry.linger is None:
                    return None
                if time.monotonic() < entry.linger_until:
                    return None  # an earlier linger's, told as it was cancelled: this one is later
                if not entry.connections:
                    self._stop_host(
                        host, time.monotonic() + entry.config.settings.shutdown_timeout_s
                    )
                elif entry.linger is not None:  # joined through the published lease meanwhile
                    entry.linger.cancel()
                    entry.linger = None
                    self._publish(host, entry, math.inf)
            case TreeStopped(host=host, final=final):
                self._tree_stopped(host, final)
            case FacadeDropped(host=host, reason=reason, count=count):
                dropped = Accounts.of(
                    received=count, exported=0, dropped={reason: count}, pending=0
                )
                self._fold(host, dropped)
            case ShutdownAll(deadline_s=deadline_s):
                self._closed = True  # connects racing the shutdown get no tree nobody would stop
                for host in list(self._hosts):
                    self._stop_host(host, deadline_s)
                return [tree.final for tree in self._stopping.values()]
            case ListHosts():
                return self._listing()
            case _:
                logger.debug("registry: unexpected message %r", type(message))
        return None

    def _connect(self, message: Connect) -> HostLease | None:
        if self._closed:
            return None
        self._connects += 1
        entry = self._hosts.get(message.host)
        if entry is None or entry.tree.generation != (message.reuse or entry.tree.generation):
            if message.tree_config is None:  # told by a connect that took a published lease
                return None  # that tree is stopping: the connection's events are counted there
            entry = self._start(message, message.tree_config)
        else:
            if entry.linger is not None:
                entry.linger.cancel()
                entry.linger = None
            entry.tree.supervisor.tell(UseConnection(context=message.context))
        context = message.context
        entry.connections.add(context.connection_id)
        entry.holders.told = (context.auth, context.user_agent, context.workspace_id)
        self._publish(message.host, entry, math.inf)
        return entry.lease

    def _start(self, message: Connect, config: TreeConfig) -> HostEntry:
        holders = Holders()
        tree = start_tree(
            config,
            next(_GENERATIONS),
            self.actor_ref,
            message.context,
            cached_flag=self._flag_cache.get(message.host),
            breaker_state=self._breakers.get(message.host),
            holders=holders,
        )
        lease = HostLease(generation=tree.generation, aggregator=tree.aggregator, flag=tree.flag)
        entry = self._hosts[message.host] = HostEntry(
            tree=tree, config=config, holders=holders, lease=lease
        )
        return entry

    def _publish(self, host: str, entry: HostEntry, reuse_until: float) -> None:
        """Publish the tree's lease for connects to take without asking, until `reuse_until`.

        Only the published registry publishes leases, and only for a tree that lingers long
        enough for a connect told on a stale read to reach this inbox before the linger ends.
        """
        if state.registry is self.actor_ref and entry.config.settings.idle_linger_s >= 0.1:
            state.leases[host] = FastLease(entry.lease, reuse_until, entry.holders)

    def _tree_stopped(self, host: str, final: TreeFinal) -> None:
        self._stopping.pop((host, final.generation), None)
        past = self._history.pop(host, None) or HostHistory(host=host)
        accounts = final.accounts
        self._remember(
            attrs.evolve(
                past,
                trees=past.trees + 1,
                incomplete=past.incomplete + (accounts is None),
                exported_logs=past.exported_logs + _exported_logs(final),
                totals=past.totals if accounts is None else past.totals.plus(accounts),
                recent=(*past.recent, final)[-RECENT_FINALS:],
            )
        )
        if final.breaker is not None:
            self._breakers[host] = final.breaker
            live = self._hosts.get(host)
            if live is not None and live.tree.generation > final.generation:
                live.tree.exporter.tell(RestoreBreaker(snapshot=final.breaker))

    def _fold(self, host: str, accounts: Accounts) -> None:
        past = self._history.pop(host, None) or HostHistory(host=host)
        self._remember(attrs.evolve(past, totals=past.totals.plus(accounts)))

    def _remember(self, history: HostHistory) -> None:
        """Keep `history` as the newest; fold the oldest host beyond the bound into `forgotten`."""
        self._history[history.host] = history
        while len(self._history) > MAX_HOSTS_REMEMBERED:
            host, oldest = self._history.popitem(last=False)
            if host in self._hosts or any(h == host for h, _ in self._stopping):
                self._history[host] = oldest  # a host with trees keeps its history
                self._history.move_to_end(host, last=True)
                break
            self._forgotten = self._forgotten.plus(oldest.totals)
            self._forgotten_hosts += 1
            self._flag_cache.pop(host, None)
            self._breakers.pop(host, None)

    def _disconnect(self, message: Disconnect) -> None:
        entry = self._hosts.get(message.host)
        if entry is None or entry.tree.generation != message.generation:
            return  # a lease on a tree that has already been stopped (e.g. by shutdown)
        self._disconnects += not message.counted
        entry.connections.discard(message.connection_id)
        if entry.connections:
            return
        linger_s = entry.config.settings.idle_linger_s
        if linger_s <= 0 or self._closed:
            deadline_s = time.monotonic() + entry.config.settings.shutdown_timeout_s
            self._stop_host(message.host, deadline_s)
            return
        if self._timer is None:
            self._timer = Timer("registry")
        if state.leases.get(message.host) is not None:
            margin_s = min(_REUSE_MARGIN_S, linger_s / 2)
            self._publish(message.host, entry, time.monotonic() + linger_s - margin_s)
        if entry.linger is not None:  # a close through the published lease while it lingered
            entry.linger.cancel()
        entry.linger_until = time.monotonic() + linger_s  # before the timer reads its clock
        entry.linger = self._timer.schedule(
            linger_s,
            self.actor_ref,
            LingerEnded(host=message.host, generation=entry.tree.generation),
        )

    def _stop_host(self, host: str, deadline_s: float) -> None:
        entry = self._hosts.pop(host)
        state.leases.pop(host, None)  # before the Stop: later connects ask
        connects, disconnects = entry.counts()
        self._connects += connects
        self._disconnects += disconnects
        if entry.linger is not None:
            entry.linger.cancel()
        self._flag_cache[host] = entry.tree.flag
        self._stopping[(host, entry.tree.generation)] = entry.tree
        entry.tree.supervisor.tell(Stop(deadline_s=deadline_s))

    def _listing(self) -> HostListing[HostTree]:
        return HostListing(
            live=tuple(
                ListedTree(
                    host=host,
                    tree=entry.tree,
                    refcount=len(entry.connections),
                    lingering=entry.linger is not None and not entry.connections,
                )
                for host, entry in self._hosts.items()
            ),
            stopping=tuple(
                ListedTree(host=host, tree=tree, refcount=0)
                for (host, _), tree in self._stopping.items()
            ),
            history=tuple(self._history.values()),
            forgotten=self._forgotten,
            forgotten_hosts=self._forgotten_hosts,
            connects=self._connects + sum(e.counts()[0] for e in self._hosts.values()),
            disconnects=self._disconnects + sum(e.counts()[1] for e in self._hosts.values()),
            handler_errors=self.handler_errors,
        )


def _exported_logs(final: TreeFinal) -> int:
    logs = final.snapshot.get("exported_logs") if final.snapshot is not None else None
    return logs if isinstance(logs, int) else 0
