"""Process-wide operations: `dump_state()`, `flush()`, `shutdown()` and the exit hook.

Only the facade asks actors, always with a timeout; none of these raise. Called from a logging
handler, from our own threads (an auth callable) or from inside our start-up (a signal or
`__del__` handler run there), they do not wait for actors that may be waiting for them:
`flush()` and `shutdown()` return False and `dump_state()` reports no hosts.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import pykka

from actors import registry as registry_module
from actors._runtime.process import (
    EXIT_MARGIN_S,
    Ending,
    ask,
    cannot_wait,
    count_of,
    guarded,
    overflowed,
    own_threads,
    state,
)
from actors.supervisor import HostTree
from messages.accounts import Accounts, snapshot_json
from messages.commands import DumpState, Flush, ListHosts, ShutdownAll
from messages.config import TelemetrySettings
from messages.snapshots import (
    HostHistory,
    HostListing,
    ListedTree,
    TreeFinal,
    merge_histories,
    to_json,
)

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


def _listing(
    timeout_s: float, registry: pykka.ActorRef[Any] | None = None
) -> HostListing[HostTree]:
    registry = registry or state.registry
    if registry is None:
        raise LookupError("no registry")
    listing: HostListing[HostTree] = ask(registry, ListHosts(), timeout_s)
    return listing


def _dump_state(timeout_s: float, registry: pykka.ActorRef[Any] | None = None) -> dict[str, Any]:
    """The report; `registry` is the one being shut down (already unpublished), if given."""
    deadline_s = time.monotonic() + timeout_s
    listing: HostListing[HostTree] | None = None
    if registry is not None or state.registry is not None:
        if cannot_wait():
            return {"hosts": {}, "registry": {"error": "called from telemetry's own thread"}}
        try:
            listing = _listing(timeout_s, registry)
        except Exception as exc:
            return {"hosts": {}, "registry": {"error": type(exc).__name__}}
    hosts: dict[str, Any] = {}
    trees: dict[str, list[Accounts | None]] = {}
    for listed in () if listing is None else (*listing.live, *listing.stopping):
        _gather(listed, listed in listing.live if listing else False, hosts, trees, deadline_s)
    history = merge_histories(state.retired, () if listing is None else listing.history)
    overflow = overflowed()  # refused by a full lane, on drivers' threads
    for host in set(hosts) | set(history) | {h for h, n in overflow.items() if n}:
        entry = hosts.setdefault(host, {"live": False, "refcount": 0})
        past = history.get(host, HostHistory(host=host))
        entry["finished_generations"] = [to_json(g) for g in past.recent]
        entry["finished_trees"] = past.trees
        entry["finished_exported_logs"] = past.exported_logs
        refused = overflow.get(host, 0)
        full = Accounts.of(received=refused, exported=0, dropped={"queue_full": refused}, pending=0)
        entry["accounting"] = _accounting(
            full.plus(past.totals), trees.get(host, []), past.incomplete
        )
    return {"hosts": hosts, "registry": _counts(listing)}


def _gather(
    listed: ListedTree[HostTree],
    live: bool,
    hosts: dict[str, Any],
    trees: dict[str, list[Accounts | None]],
    deadline_s: float,
) -> None:
    """Ask one tree's actors; its accounts join the host's, its detail shows unless live's does."""
    tree = listed.tree
    actors = _ask_all(_tree_refs(tree), deadline_s)
    accounts = _accounts_of(actors.get("aggregator"))
    if accounts is None:  # stopped since the listing: its final accounts take its place
        accounts = _final_accounts(tree, deadline_s)
    trees.setdefault(listed.host, []).append(accounts)
    if not live and listed.host in hosts:
        return  # the live tree's detail is shown; the draining one counts in the totals
    aggregator = actors.get("aggregator")
    if isinstance(aggregator, Mapping):  # the one conversion of the accounts record to JSON
        actors["aggregator"] = snapshot_json(aggregator)
    hosts[listed.host] = {
        "live": live,
        "refcount": listed.refcount,
        "lingering": listed.lingering,
        "generation": tree.generation,
        **actors,
    }


def _counts(listing: HostListing[HostTree] | None) -> dict[str, Any] | None:
    if listing is None:
        return state.retired_counts
    forgotten = listing.forgotten.plus(state.retired_forgotten)
    return {
        "stopping": [f"{t.host}#{t.tree.generation}" for t in listing.stopping],
        "connects": listing.connects,
        "disconnects": listing.disconnects,
        "handler_errors": listing.handler_errors,
        "hosts_forgotten": listing.forgotten_hosts + state.retired_forgotten_hosts,
        "forgotten": forgotten.as_json(),
    }


def _retire(listing: HostListing[HostTree]) -> None:
    """Keep what a registry that was shut down counted (under the lock: pure data)."""
    overflow = overflowed()
    refused = [
        HostHistory(
            host=host,
            totals=Accounts.of(received=n, exported=0, dropped={"queue_full": n}, pending=0),
        )
        for host, n in overflow.items()
        if n
    ]
    counts = _counts(listing)  # before this registry's forgotten hosts join the retired ones
    retired = merge_histories(state.retired, (*listing.history, *refused))
    forgotten, forgotten_hosts = listing.forgotten, listing.forgotten_hosts
    while len(retired) > registry_module.MAX_HOSTS_REMEMBERED:
        forgotten = forgotten.plus(retired.pop(next(iter(retired))).totals)
        forgotten_hosts += 1
    state.retired = retired
    state.retired_forgotten = state.retired_forgotten.plus(forgotten)
    state.retired_forgotten_hosts += forgotten_hosts
    state.overflowed = {}
    if counts is not None:
        counts["forgotten"] = state.retired_forgotten.as_json()
        counts["hosts_forgotten"] = state.retired_forgotten_hosts
    state.retired_counts = counts


def _final_accounts(tree: HostTree, deadline_s: float) -> Accounts | None:
    try:
        final: TreeFinal = tree.final.get(timeout=max(0.0, deadline_s - time.monotonic()))
    except Exception:
        return None
    return final.accounts


def _accounts_of(snapshot: Any) -> Accounts | None:
    accounts = snapshot.get("accounts") if isinstance(snapshot, Mapping) else None
    return accounts if isinstance(accounts, Accounts) else None


def _accounting(past: Accounts, trees: list[Accounts | None], incomplete: int) -> dict[str, Any]:
    """Totals over this host's history and its trees now: told = exported + dropped + pending."""
    total = past.plus(*(a for a in trees if a is not None))
    return {
        "told": total.received,
        "exported": total.exported,
        "dropped": dict(total.dropped),
        "pending": total.pending,
        "balanced": total.balanced,
        "complete": not incomplete and all(a is not None for a in trees),
    }


def flush(timeout_s: float = 5.0) -> bool:
    """Send every queued log of every host now, draining trees included; True if all were
    attempted (and every draining tree finished cleanly) within the timeout."""
    deadline_s = time.monotonic() + timeout_s
    if state.registry is None:
        return True
    if cannot_wait():
        return False
    try:
        listing = _listing(timeout_s)
        futures: list[pykka.ThreadingFuture[Any]] = []
        for listed in listing.live:
            future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
            try:
                listed.tree.aggregator.tell(Flush(reply=future))
            except Exception:  # stopped since the listing: its drain is what flushed it
                future = listed.tree.final
            futures.append(future)
        futures.extend(listed.tree.final for listed in listing.stopping)
        return all(_done(f.get(timeout=max(0.0, deadline_s - time.monotonic()))) for f in futures)
    except Exception:
        logger.debug("telemetry: flush did not finish", exc_info=True)
        return False


def _done(outcome: Any) -> bool:
    if isinstance(outcome, TreeFinal):
        return not outcome.cut_short
    return bool(outcome)


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
    ours = own_threads()  # this registry's lineage: joined before returning
    try:
        drain_by = max(time.monotonic(), deadline_s - EXIT_MARGIN_S)
        futures: list[pykka.Future[TreeFinal]] = ask(
            registry, ShutdownAll(deadline_s=drain_by), max(0.01, deadline_s - time.monotonic())
        )
        for future in futures:
            final = future.get(timeout=max(0.0, deadline_s - time.monotonic()))
            # A drain cut short by the deadline reports its drops, not a timeout: both are unclean.
            clean = clean and not final.cut_short
    except Exception:
        logger.debug("telemetry: shutdown did not finish in %.3f s", timeout_s, exc_info=True)
        clean = False
    with guarded(lock=True):
        owner = state.registry is registry
        if owner:  # drops told from now on are counted without a registry
            state.registry = None
    if not owner:  # another shutdown() retires this registry
        return clean
    try:
        listing = _listing(max(0.05, deadline_s - time.monotonic()), registry)
        with guarded(lock=True):
            _retire(listing)
        registry.stop(block=True, timeout=max(0.01, deadline_s - time.monotonic()))
    except Exception:
        logger.debug("telemetry: registry stop failed", exc_info=True)
        clean = False
    _release(ours, deadline_s)
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


def _release(threads: list[threading.Thread], deadline_s: float) -> None:
    """Wait (boundedly) for the stopped trees' threads to end, then close the pooled sockets.

    In that order: a socket still held by an exporter that is finishing its last request goes
    back to the pool before the pool is closed, so none is left to the garbage collector.
    """
    for thread in threads:
        if thread is not threading.current_thread():
            try:
                thread.join(max(0.0, deadline_s - time.monotonic()))
            except RuntimeError:  # still starting when listed: not one of the trees stopped
                continue
    pool = state.pool
    # At exit the process is ending and the OS closes the sockets: clearing here would hand
    # sockets that urllib3's own exit finalizers left half closed to the garbage collector
    # (an "unclosed socket" ResourceWarning on the application's stderr under -X dev).
    if pool is not None and state.registry is None and not state.exited:
        try:
            pool.clear()
        except Exception:
            logger.debug("telemetry: pool clear failed", exc_info=True)


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
