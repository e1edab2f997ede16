"""RegistryActor: the process-wide reference count of host trees, kept as messages.

Connects and disconnects for all hosts are serialised through this one inbox, so a connect racing
the last disconnect of the same host never sees a half-stopped tree: the last disconnect detaches
the tree at once (it drains and stops on its own, boundedly) and the next connect starts a fresh
one. Nothing here blocks: starting a tree only starts threads.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from typing import Any

import attrs
import pykka

from actors._runtime.base import GuardedActor
from actors.feature_flags import FlagView
from actors.supervisor import HostTree, TreeConfig, start_tree
from messages.commands import (
    Connect,
    Disconnect,
    FacadeDropped,
    HostLease,
    ListHosts,
    RestoreBreaker,
    ShutdownAll,
    Stop,
    TreeStopped,
    UseConnection,
)
from messages.snapshots import BreakerSnapshot, TreeFinal

__all__ = ["HostEntry", "RegistryActor"]

logger = logging.getLogger("actors.registry")

# Process-wide, so a lease from before a shutdown never matches a tree started after it.
_GENERATIONS = itertools.count(1)


@attrs.define
class HostEntry:
    """A live host: its tree, its settings and who holds a lease on it."""

    tree: HostTree
    config: TreeConfig
    connections: set[int]


class RegistryActor(GuardedActor):
    """Starts a host's tree on its first connect and stops it after its last disconnect."""

    def __init__(self) -> None:
        super().__init__()
        self._hosts: dict[str, HostEntry] = {}
        self._stopping: dict[tuple[str, int], pykka.ThreadingFuture[Any]] = {}
        self._finished: dict[str, list[TreeFinal]] = collections.defaultdict(list)
        self._facade_drops: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self._flag_cache: dict[str, FlagView] = {}
        self._breakers: dict[str, BreakerSnapshot] = {}
        self._connects = 0
        self._disconnects = 0

    def handle(self, message: Any) -> Any:
        match message:
            case Connect():
                return self._connect(message)
            case Disconnect():
                self._disconnect(message)
            case TreeStopped(host=host, final=final):
                self._tree_stopped(host, final)
            case FacadeDropped(host=host, reason=reason, count=count):
                self._facade_drops[host][reason] += count
            case ShutdownAll(deadline_s=deadline_s):
                for host in list(self._hosts):
                    self._stop_host(host, deadline_s)
                return list(self._stopping.values())
            case ListHosts():
                return self._listing()
            case _:
                logger.debug("registry: unexpected message %r", type(message))
        return None

    def _connect(self, message: Connect) -> HostLease:
        self._connects += 1
        entry = self._hosts.get(message.host)
        if entry is None:
            generation = next(_GENERATIONS)
            tree = start_tree(
                message.tree_config,
                generation,
                self.actor_ref,
                message.context,
                cached_flag=self._flag_cache.get(message.host),
                breaker_state=self._breakers.get(message.host),
            )
            entry = self._hosts[message.host] = HostEntry(
                tree=tree, config=message.tree_config, connections=set()
            )
        else:
            entry.tree.supervisor.tell(UseConnection(context=message.context))
        entry.connections.add(message.context.connection_id)
        return HostLease(
            generation=entry.tree.generation,
            aggregator=entry.tree.aggregator,
            flag=entry.tree.flag,
        )

    def _tree_stopped(self, host: str, final: TreeFinal) -> None:
        self._stopping.pop((host, final.generation), None)
        self._finished[host].append(final)
        if final.breaker is not None:
            self._breakers[host] = final.breaker
            live = self._hosts.get(host)
            if live is not None and live.tree.generation > final.generation:
                live.tree.exporter.tell(RestoreBreaker(snapshot=final.breaker))

    def _disconnect(self, message: Disconnect) -> None:
        entry = self._hosts.get(message.host)
        if entry is None or entry.tree.generation != message.generation:
            return  # a lease on a tree that has already been stopped (e.g. by shutdown)
        self._disconnects += 1
        entry.connections.discard(message.connection_id)
        if not entry.connections:
            deadline_s = time.monotonic() + entry.config.settings.shutdown_timeout_s
            self._stop_host(message.host, deadline_s)

    def _stop_host(self, host: str, deadline_s: float) -> None:
        entry = self._hosts.pop(host)
        self._flag_cache[host] = entry.tree.flag
        reply: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        self._stopping[(host, entry.tree.generation)] = reply
        entry.tree.supervisor.tell(Stop(deadline_s=deadline_s, reply=reply))

    def _listing(self) -> dict[str, Any]:
        return {
            "live": {
                host: {
                    "tree": entry.tree,
                    "refcount": len(entry.connections),
                    "shutdown_timeout_s": entry.config.settings.shutdown_timeout_s,
                }
                for host, entry in self._hosts.items()
            },
            "stopping": [f"{host}#{gen}" for host, gen in self._stopping],
            "finished": {host: tuple(finals) for host, finals in self._finished.items()},
            "facade_dropped": {host: dict(c) for host, c in self._facade_drops.items()},
            "connects": self._connects,
            "disconnects": self._disconnects,
            "handler_errors": self.handler_errors,
        }
