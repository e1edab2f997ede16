"""Process-wide operations: `dump_state()`, `flush()`, `shutdown()` and the exit hook.

Only the facade asks actors, always with a timeout; none of these raise. Called from a logging
handler, from our own threads (an auth callable) or from inside our start-up (a signal or
`__del__` handler run there), they do not wait for actors that may be waiting for them:
`flush()` and `shutdown()` return False and `dump_state()` reports no hosts.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

import pykka

from actors._runtime.process import (
    EXIT_MARGIN_S,
    Ending,
    ask,
    cannot_wait,
    count_of,
    guarded,
    overflowed,
    state,
)
from actors.supervisor import HostTree
from messages.accounts import Accounts, snapshot_json
from messages.commands import DumpState, Flush, ListHosts, ShutdownAll
from messages.config import TelemetrySettings
from messages.snapshots import TreeFinal, to_json

__all__ = ["Ending", "at_exit", "dump_state", "end_before_exit", "flush", "shutdown"]

logger = logging.getLogger("actors")


def _ask_all(refs: Mapping[str, pykka.ActorRef[Any]], deadline_s: float) -> dict[str, Any]:
    futures: dict[str, pykka.Future[Any] | None] = {}
    for name, ref in refs.items():
        try:
            futures[name] = ref.ask(DumpState(), block=False)
        except Exception:
            futures[name] = None
    out: dict[str, Any] = {}
    for name, future in futures.items():
        try:
            out[name] = (
                future.get(timeout=max(0.0, deadline_s - time.monotonic()))
                if future
                else {"error": "stopped"}
            )
        except Exception as exc:
            out[name] = {"error": type(exc).__name__}
    return out


def _tree_refs(tree: HostTree) -> dict[str, pykka.ActorRef[Any]]:
    return {
        "supervisor": tree.supervisor,
        "feature_flags": tree.feature_flags,
        "aggregator": tree.aggregator,
        "exporter": tree.exporter,
    }


def dump_state(timeout_s: float = 2.0) -> dict[str, Any]:
    """A JSON-serialisable snapshot of every host's actors and accounts; never raises.

    `dropped_without_registry` counts events told after `shutdown()` (no host to count them).
    """
    report = dict(_dump_state(timeout_s))
    report["dropped_without_registry"] = count_of(state.unrouted)
    return dict(to_json(report))


def _dump_state(timeout_s: float) -> dict[str, Any]:
    deadline_s = time.monotonic() + timeout_s
    registry = state.registry
    if registry is None:
        return state.last_report or {"hosts": {}, "registry": None}
    if cannot_wait():
        return {"hosts": {}, "registry": {"error": "called from telemetry's own thread"}}
    try:
        listing: dict[str, Any] = ask(registry, ListHosts(), timeout_s)
    except Exception as exc:
        return {"hosts": {}, "registry": {"error": type(exc).__name__}}
    hosts: dict[str, Any] = {}
    for host, info in listing.pop("live").items():
        tree: HostTree = info.pop("tree")
        actors = _ask_all(_tree_refs(tree), deadline_s)
        hosts[host] = {
            "live": True,
            "refcount": info["refcount"],
            "generation": tree.generation,
            **actors,
        }
    finished: Mapping[str, tuple[TreeFinal, ...]] = listing.pop("finished")
    facade = listing.pop("facade_dropped")
    for host, events in overflowed().items():  # refused by a full lane, on drivers' threads
        if events:
            drops = facade.setdefault(host, {})
            drops["queue_full"] = drops.get("queue_full", 0) + events
    for host in set(hosts) | set(finished) | set(facade):
        entry = hosts.setdefault(host, {"live": False, "refcount": 0})
        generations = finished.get(host, ())
        live = entry.get("aggregator")
        if isinstance(live, Mapping):  # the one conversion of the accounts record to JSON
            entry["aggregator"] = snapshot_json(live)
        entry["finished_generations"] = [to_json(g) for g in generations]
        entry["accounting"] = _accounting(
            _accounts_of(live), [g.accounts for g in generations], facade.get(host, {})
        )
    return {"hosts": hosts, "registry": listing}


def _accounts_of(snapshot: Any) -> Accounts | None:
    accounts = snapshot.get("accounts") if isinstance(snapshot, Mapping) else None
    return accounts if isinstance(accounts, Accounts) else None


def _accounting(
    live: Accounts | None, finished: list[Accounts | None], facade: Mapping[str, int]
) -> dict[str, Any]:
    """Totals over this host's live and finished trees: told = exported + dropped + pending."""
    parts = [a for a in [live, *finished] if a is not None]
    at_facade = Accounts.of(received=sum(facade.values()), exported=0, dropped=facade, pending=0)
    total = at_facade.plus(*parts)
    return {
        "told": total.received,
        "exported": total.exported,
        "dropped": dict(total.dropped),
        "pending": total.pending,
        "balanced": total.balanced,
        "complete": all(a is not None for a in finished),
    }


def flush(timeout_s: float = 5.0) -> bool:
    """Send every queued log of every host now; True if all were attempted within the timeout."""
    deadline_s = time.monotonic() + timeout_s
    registry = state.registry
    if registry is None:
        return True
    if cannot_wait():
        return False
    try:
        listing: dict[str, Any] = ask(registry, ListHosts(), timeout_s)
        futures = []
        for info in listing["live"].values():
            future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
            info["tree"].aggregator.tell(Flush(reply=future))
            futures.append(future)
        return all(f.get(timeout=max(0.0, deadline_s - time.monotonic())) for f in futures)
    except Exception:
        logger.debug("telemetry: flush did not finish", exc_info=True)
        return False


def shutdown(timeout_s: float | None = None) -> bool:
    """Drain and stop every host within `timeout_s` in total; True if all drained in time.

    Defaults to the largest `telemetry.shutdown_timeout_ms` seen. Later `connect()` calls start
    afresh. Never raises.
    """
    if timeout_s is None:
        timeout_s = state.shutdown_timeout_s
        if timeout_s is None:
            timeout_s = TelemetrySettings().shutdown_timeout_s
    deadline_s = time.monotonic() + max(0.0, timeout_s)
    registry = state.registry
    if registry is None:
        return True
    if cannot_wait():
        return False
    clean = True
    try:
        drain_by = max(time.monotonic(), deadline_s - EXIT_MARGIN_S)
        futures: list[pykka.Future[Any]] = ask(
            registry, ShutdownAll(deadline_s=drain_by), max(0.01, deadline_s - time.monotonic())
        )
        for future in futures:
            final: TreeFinal = future.get(timeout=max(0.0, deadline_s - time.monotonic()))
            # A drain cut short by the deadline reports its drops, not a timeout: both are unclean.
            clean = clean and not final.cut_short
    except Exception:
        logger.debug("telemetry: shutdown did not finish in %.3f s", timeout_s, exc_info=True)
        clean = False
    try:
        state.last_report = _dump_state(max(0.05, deadline_s - time.monotonic()))
        registry.stop(block=False)
    except Exception:
        logger.debug("telemetry: registry stop failed", exc_info=True)
    with guarded(lock=True):
        if state.registry is registry:
            state.registry = None
            state.overflowed = {}  # counted in last_report; the trees' lanes are closed now
    return clean


def end_before_exit(item: Ending) -> None:
    """Have the exit hook end `item` before it drains; safe from any thread, never raises."""
    key = id(item)
    try:
        state.ending[key] = weakref.ref(item, lambda _ref: state.ending.pop(key, None))
    except Exception:
        logger.debug("telemetry: %r not ended at exit", type(item))


def _end_all() -> None:
    for ref in list(state.ending.values()):
        item = ref()
        if item is not None:
            item.end_at_exit()


def at_exit() -> None:
    """The one exit hook: end open sessions, then drain every host within the shutdown timeout.

    From here on no tree starts in this process: an `atexit` handler that runs after ours (one
    registered before it) would leave events in a tree nobody drains, so they are counted
    instead (`dropped_without_registry`).
    """
    state.exited = True
    try:
        _end_all()
    except Exception:  # a session made on another thread meanwhile: the drain still runs
        logger.debug("telemetry: sessions not ended at exit", exc_info=True)
    shutdown()
