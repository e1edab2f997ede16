"""The driver-facing entry point: `connect()` a host, `tell()` events, `close()`.

Everything here is safe from any driver thread. After setup nothing raises into the driver:
`Connection.tell()` does no I/O, takes no lock and returns a bool. Only explicitly invalid input
passed in code (a bad host, bad `TelemetrySettings`, a bad `DriverInfo`) raises `ValueError`,
from `connect()`, before any thread starts.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import pykka

from actors._base import LANE_WAKE, ExpressInbox
from actors.file_sink import FileTransport
from actors.hosts import HostAddress, normalise_host
from actors.http import SessionLike, SessionTransport, Transport, Urllib3Transport, new_pool_manager
from actors.registry import RegistryActor
from actors.supervisor import HostTree, TreeConfig
from messages.commands import (
    AuthProvider,
    Connect,
    ConnectionContext,
    Disconnect,
    DumpState,
    FacadeDropped,
    Flush,
    HostLease,
    ListHosts,
    ShutdownAll,
)
from messages.config import TelemetrySettings
from messages.sysconfig import DriverInfo, system_configuration

__all__ = ["Connection", "connect", "dump_state", "flush", "shutdown"]

logger = logging.getLogger("actors")

_ASK_TIMEOUT_S = 2.0
_EXIT_MARGIN_S = 0.1
_ORG_ID = re.compile(r"(?:[?&]o=|/o/)(\d{1,19})(?:[/&#]|$)")


class _Process:
    """Process-wide state of the facade; reset in a forked child."""

    def __init__(self) -> None:
        # The only lock in the package: it guards the lazy start of the registry and pool, on
        # the connect() path, never on tell().
        self.lock = threading.Lock()
        self.registry: pykka.ActorRef[Any] | None = None
        self.pool: Any = None
        self.epoch = 0
        # The largest shutdown timeout of any connection opened; None until one is.
        self.shutdown_timeout_s: float | None = None
        self.exit_hook = False
        self.last_report: dict[str, Any] | None = None
        self.unrouted = itertools.count()


_state = _Process()
_connection_ids = itertools.count(1)


def _after_fork_in_child() -> None:
    """The parent's threads do not exist here: forget its actors and sockets."""
    _state.lock = threading.Lock()
    _state.registry = None
    _state.pool = None
    _state.epoch += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def _registry() -> pykka.ActorRef[Any]:
    with _state.lock:
        if _state.registry is None or not _state.registry.is_alive():
            _state.registry = RegistryActor.start()
            if not _state.exit_hook:
                atexit.register(_at_exit)
                _state.exit_hook = True
            if _state.epoch:  # a forked child exits through multiprocessing, not atexit
                _register_multiprocessing_exit()
        return _state.registry


def _register_multiprocessing_exit() -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _at_exit, exitpriority=100)


def _pool() -> Any:
    with _state.lock:
        if _state.pool is None:
            _state.pool = new_pool_manager()
        return _state.pool


def workspace_id_of(http_path: str | None) -> int | None:
    """The org id from ``?o=<id>`` or ``/o/<id>/`` in an HTTP path, if present."""
    if not http_path:
        return None
    match = _ORG_ID.search(http_path)
    return int(match.group(1)) if match and int(match.group(1)) < 2**63 else None


class Connection:
    """One driver connection's handle on its host's telemetry. Safe from any thread."""

    __slots__ = (
        "_alive",
        "_args",
        "_closed",
        "_context",
        "_epoch",
        "_flag",
        "_generation",
        "_lane",
        "_tell",
        "host",
    )

    def __init__(self, host: str, args: tuple[Any, ...]) -> None:
        self.host = host
        self._args = args
        self._closed = False
        self._epoch = _state.epoch
        self._context: ConnectionContext | None = None
        self._tell: Any = None
        self._lane: ExpressInbox | None = None
        self._alive: Any = None
        self._flag: Any = None
        self._generation = 0

    def _bind(self, context: ConnectionContext, lease: HostLease) -> None:
        self._context = context
        self._tell = lease.aggregator.tell
        inbox = getattr(lease.aggregator, "actor_inbox", None)
        self._lane = inbox if isinstance(inbox, ExpressInbox) else None
        self._alive = lease.aggregator.is_alive
        self._flag = lease.flag
        self._generation = lease.generation

    @property
    def enabled(self) -> bool:
        """Whether events told now may be exported (False when disabled, closed, or flag off)."""
        flag, alive = self._flag, self._alive
        return (
            alive is not None
            and alive()
            and not self._closed
            and (flag is None or flag.enabled is not False)
        )

    def tell(self, event: object) -> bool:
        """Hand one event to the host's aggregator; never blocks, never raises."""
        try:
            if self._epoch != _state.epoch:
                self._rebind_after_fork()
            if self._tell is None:
                return False
            if self._closed:
                _drop(self.host, "after_close")
                return False
            lane = self._lane
            if lane is None:
                self._tell((self._context, event))
                return True
            if lane.closed:
                _drop(self.host, "after_shutdown")
                return False
            lane.events.append((self._context, event))
            if not lane.scheduled:  # the aggregator is not looking at its lane: wake it
                lane.scheduled = True
                self._tell(LANE_WAKE)
            return True
        except Exception:
            _drop(self.host, "after_shutdown")
            return False

    def close(self) -> None:
        """Release this connection's lease (idempotent); the last one stops the host's tree."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._tell is None or self._context is None or self._epoch != _state.epoch:
                return
            registry = _state.registry
            if registry is not None:
                registry.tell(
                    Disconnect(
                        host=self.host,
                        generation=self._generation,
                        connection_id=self._context.connection_id,
                    )
                )
        except Exception:
            logger.debug("telemetry: close of %s failed", self.host, exc_info=True)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _rebind_after_fork(self) -> None:
        self._epoch = _state.epoch
        self._tell = None
        self._lane = None
        if not self._closed:
            _open(self, *self._args)


def _ask(ref: pykka.ActorRef[Any], message: Any, timeout_s: float) -> Any:
    """Ask with a timeout (only the facade asks; actors never do)."""
    return ref.ask(message, timeout=timeout_s)


def _drop(host: str, reason: str) -> None:
    try:
        registry = _state.registry
        if registry is not None:
            registry.tell(FacadeDropped(host=host, reason=reason))
            return
    except Exception:
        logger.debug("telemetry: could not count a %s drop", reason)
    next(_state.unrouted)  # no registry (after shutdown): an atomic count, read by dump_state


def check_setup(host: str, driver: object, settings: object, auth: object) -> HostAddress:
    """The checks of `connect()`'s code-given input; raises `ValueError`, returns the host."""
    if not isinstance(driver, DriverInfo):
        raise ValueError(f"driver must be a DriverInfo, got {type(driver).__name__}")
    if settings is not None and not isinstance(settings, TelemetrySettings):
        raise ValueError(f"settings must be TelemetrySettings, got {type(settings).__name__}")
    if auth is not None and not callable(auth):
        raise ValueError("auth must be a callable returning headers, or None")
    return normalise_host(host)


def connect(
    host: str,
    properties: Mapping[str, object] | None = None,
    *,
    driver: DriverInfo,
    auth: AuthProvider | None = None,
    http_path: str | None = None,
    settings: TelemetrySettings | None = None,
    session: SessionLike | None = None,
) -> Connection:
    """Open one connection's telemetry for `host`; never waits on the network.

    `properties` are the connection's properties (``telemetry.*`` keys; invalid values fall back
    to the environment, then defaults). `settings`, if given, replaces them and must be valid.
    `auth` returns that connection's current auth headers, or is None for an unauthenticated
    connection. `session` is an optional ``requests.Session``-like transport to reuse.
    """
    address = check_setup(host, driver, settings, auth)
    if settings is None:
        settings = TelemetrySettings.from_sources(properties)
    handle = Connection(address.key, (address, driver, auth, http_path, settings, session))
    _open(handle, address, driver, auth, http_path, settings, session)
    return handle


def _open(
    handle: Connection,
    address: Any,
    driver: DriverInfo,
    auth: AuthProvider | None,
    http_path: str | None,
    settings: TelemetrySettings,
    session: SessionLike | None,
) -> None:
    if not settings.enabled and not settings.force_enable:
        return  # disabled in configuration: no actors, no HTTP
    try:
        context = ConnectionContext(
            connection_id=next(_connection_ids),
            host=address.key,
            auth=auth,
            user_agent=driver.user_agent,
            system_configuration=system_configuration(driver),
            workspace_id=workspace_id_of(http_path),
        )
        config = TreeConfig(
            address=address,
            settings=settings,
            transport=_transport(settings, session),
            driver_version=driver.version,
        )
        lease: HostLease = _ask(
            _registry(),
            Connect(host=address.key, context=context, tree_config=config),
            _ASK_TIMEOUT_S,
        )
        _state.shutdown_timeout_s = max(
            _state.shutdown_timeout_s or 0.0, settings.shutdown_timeout_s
        )
        handle._bind(context, lease)
    except Exception:
        logger.debug(
            "telemetry: connect to %s failed; telemetry off for it", address.key, exc_info=True
        )


def _transport(settings: TelemetrySettings, session: SessionLike | None) -> Transport:
    if settings.sink == "file" and settings.file_path:
        return FileTransport(settings.file_path)
    connect_s, read_s = settings.connect_timeout_s, settings.read_timeout_s
    if session is not None:
        return SessionTransport(session, connect_timeout_s=connect_s, read_timeout_s=read_s)
    return Urllib3Transport(_pool(), connect_timeout_s=connect_s, read_timeout_s=read_s)


# --- process-wide operations --------------------------------------------------------------------


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
    state = dict(_dump_state(timeout_s))
    state["dropped_without_registry"] = _state.unrouted.__reduce__()[1][0]
    return state


def _dump_state(timeout_s: float) -> dict[str, Any]:
    deadline_s = time.monotonic() + timeout_s
    registry = _state.registry
    if registry is None:
        return _state.last_report or {"hosts": {}, "registry": None}
    try:
        listing: dict[str, Any] = _ask(registry, ListHosts(), timeout_s)
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
    finished = listing.pop("finished")
    facade = listing.pop("facade_dropped")
    for host in set(hosts) | set(finished) | set(facade):
        entry = hosts.setdefault(host, {"live": False, "refcount": 0})
        entry["finished_generations"] = finished.get(host, [])
        entry["accounting"] = _accounting(
            entry.get("aggregator"), finished.get(host, []), facade.get(host, {})
        )
    return {"hosts": hosts, "registry": listing}


def _accounting(
    live: Any, finished: list[dict[str, Any]], facade: Mapping[str, int]
) -> dict[str, Any]:
    """Totals over this host's live and finished trees: told = exported + dropped + pending."""
    parts = [s for s in [live, *finished] if isinstance(s, dict) and "received" in s]
    dropped: dict[str, int] = dict(facade)
    for part in parts:
        for reason, n in part["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + n
    received = sum(p["received"] for p in parts)
    exported = sum(p["exported"] for p in parts)
    pending = sum(p["pending"] for p in parts)
    told = received + sum(facade.values())
    return {
        "told": told,
        "exported": exported,
        "dropped": dropped,
        "pending": pending,
        "balanced": told == exported + sum(dropped.values()) + pending,
        "complete": all("received" in s for s in [*finished] if isinstance(s, dict)),
    }


def flush(timeout_s: float = 5.0) -> bool:
    """Send every queued log of every host now; True if all were attempted within the timeout."""
    deadline_s = time.monotonic() + timeout_s
    registry = _state.registry
    if registry is None:
        return True
    try:
        listing: dict[str, Any] = _ask(registry, ListHosts(), timeout_s)
        futures = []
        for info in listing["live"].values():
            future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
            info["tree"].aggregator.tell(Flush(deadline_s=deadline_s, reply=future))
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
        timeout_s = _state.shutdown_timeout_s
        if timeout_s is None:
            timeout_s = TelemetrySettings().shutdown_timeout_s
    deadline_s = time.monotonic() + max(0.0, timeout_s)
    registry = _state.registry
    if registry is None:
        return True
    clean = True
    try:
        drain_by = max(time.monotonic(), deadline_s - _EXIT_MARGIN_S)
        futures: list[pykka.Future[Any]] = _ask(
            registry, ShutdownAll(deadline_s=drain_by), max(0.01, deadline_s - time.monotonic())
        )
        for future in futures:
            result = future.get(timeout=max(0.0, deadline_s - time.monotonic()))
            # A drain cut short by the deadline reports its drops, not a timeout: both are unclean.
            cut_short = result.get("timed_out", False) or result.get("dropped", {}).get(
                "shutdown_timeout", 0
            )
            clean = clean and not cut_short
    except Exception:
        logger.debug("telemetry: shutdown did not finish in %.3f s", timeout_s, exc_info=True)
        clean = False
    try:
        _state.last_report = _dump_state(max(0.05, deadline_s - time.monotonic()))
        registry.stop(block=False)
    except Exception:
        logger.debug("telemetry: registry stop failed", exc_info=True)
    with _state.lock:
        if _state.registry is registry:
            _state.registry = None
    return clean


def _at_exit() -> None:
    """The one exit hook: flush every host, bounded by the shutdown timeout."""
    shutdown()
