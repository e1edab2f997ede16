"""The driver-facing entry point: `connect()` a host, `tell()` events, `close()`.

Everything here is safe from any driver thread. After setup nothing raises into the driver:
`Connection.tell()` does no I/O, takes no lock and returns a bool: it offers the event to the
host's `EventLane`, whose module states the rule for every cell threads share. Only explicitly
invalid input passed in code (a bad host, bad `TelemetrySettings`, a bad `DriverInfo`) raises
`ValueError`, from `connect()`, before any thread starts.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from actors._export.file_sink import FileTransport
from actors._export.http import (
    SessionLike,
    SessionTransport,
    Transport,
    Urllib3Transport,
)
from actors._export.mirror import MirrorTransport
from actors._export.otlp import OtlpTransport, otlp_http
from actors._runtime import startup
from actors._runtime.hosts import HostAddress, normalise_host
from actors._runtime.lane import EventLane
from actors._runtime.operations import dump_state, flush, shutdown
from actors._runtime.process import (
    ASK_TIMEOUT_S,
    Holders,
    ask,
    cannot_wait,
    drop,
    in_logging_handler,
    state,
)
from actors.supervisor import TreeConfig
from messages.commands import (
    AuthProvider,
    Connect,
    ConnectionContext,
    Disconnect,
    HostLease,
)
from messages.config import TelemetrySettings
from messages.sysconfig import DriverInfo, system_configuration

__all__ = ["Connection", "connect", "dump_state", "flush", "shutdown"]

logger = logging.getLogger("actors")

_ORG_ID = re.compile(r"(?:[?&]o=|/o/)(\d{1,19})(?:[/&#]|$)")
_connection_ids = itertools.count(1)


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
        "_holders",
        "_lane",
        "host",
    )

    def __init__(self, host: str, args: tuple[Any, ...]) -> None:
        self.host = host
        self._args = args
        self._closed = False
        self._epoch = state.epoch
        self._context: ConnectionContext | None = None
        self._lane: EventLane | None = None
        self._alive: Any = None
        self._flag: Any = None
        self._generation = 0
        self._holders: Holders | None = None

    def _bind(
        self, context: ConnectionContext, lease: HostLease, holders: Holders | None = None
    ) -> None:
        self._context = context
        self._holders = holders
        inbox = getattr(lease.aggregator, "actor_inbox", None)
        lane = getattr(inbox, "lane", None)
        self._lane = lane if isinstance(lane, EventLane) else None
        self._alive = lease.aggregator.is_alive
        self._flag = lease.flag
        self._generation = lease.generation

    @property
    def enabled(self) -> bool:
        """Whether events told now may be exported (False when disabled, closed, or flag off)."""
        flag, alive, lane = self._flag, self._alive, self._lane
        return (
            lane is not None
            and not lane.closed
            and alive is not None
            and alive()
            and not self._closed
            and (flag is None or flag.enabled is not False)
        )

    def tell(self, event: object) -> bool:
        """Hand one event to the host's aggregator; never blocks, never raises."""
        try:
            if self._epoch != state.epoch:
                self._rebind_after_fork()
            lane, context = self._lane, self._context
            if lane is None or context is None:
                return False
            if self._closed:
                drop(self.host, "after_close")
                return False
            return lane.offer((context, event))
        except Exception:
            drop(self.host, "after_shutdown")
            return False

    def close(self) -> None:
        """Release this connection's lease (idempotent); the last one lets the host's tree linger
        for `telemetry.idle_linger_ms`, then stop."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._lane is None or self._context is None or self._epoch != state.epoch:
                return
            holders, connection_id = self._holders, self._context.connection_id
            if holders is not None:  # took the published lease: counted here, told if last
                next(holders.disconnects)
                startup.leave(holders, self.host, self._generation, connection_id)
                return
            registry = state.registry
            if registry is not None:
                registry.tell(
                    Disconnect(
                        host=self.host, generation=self._generation, connection_id=connection_id
                    )
                )
        except Exception:
            logger.debug("telemetry: close of %s failed", self.host, exc_info=True)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _rebind_after_fork(self) -> None:
        self._epoch = state.epoch
        self._lane = None
        self._holders = None  # the parent's tree: this process has its own
        if not self._closed:
            _open(self, *self._args)


def check_setup(
    host: str,
    driver: object,
    settings: object,
    auth: object,
    properties: object = None,
    http_path: object = None,
    session: object = None,
) -> HostAddress:
    """The checks of `connect()`'s code-given input; raises `ValueError`, returns the host."""
    if not isinstance(driver, DriverInfo):
        raise ValueError(f"driver must be a DriverInfo, got {type(driver).__name__}")
    if settings is not None and not isinstance(settings, TelemetrySettings):
        raise ValueError(f"settings must be TelemetrySettings, got {type(settings).__name__}")
    if auth is not None and not callable(auth):
        raise ValueError("auth must be a callable returning headers, or None")
    if properties is not None and not isinstance(properties, Mapping):
        raise ValueError(
            f"properties must be a mapping of connection properties (e.g. a dict) or None, "
            f"got {type(properties).__name__}"
        )
    if http_path is not None and not isinstance(http_path, str):
        raise ValueError(f"http_path must be a str or None, got {type(http_path).__name__}")
    if session is not None and not callable(getattr(session, "request", None)):
        raise ValueError(
            f"session must be a requests.Session-like object with request(), "
            f"got {type(session).__name__}"
        )
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
    address = check_setup(host, driver, settings, auth, properties, http_path, session)
    return open_checked(address, properties, driver, auth, http_path, settings, session)


def open_checked(
    address: HostAddress,
    properties: Mapping[str, object] | None,
    driver: DriverInfo,
    auth: AuthProvider | None,
    http_path: str | None,
    settings: TelemetrySettings | None,
    session: SessionLike | None = None,
) -> Connection:
    """`connect()` for input `check_setup()` accepted already (the host as it returned it)."""
    if settings is None:
        settings = startup.settings_of(properties)
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
    if not settings.active:
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
    except Exception:  # checked input cannot fail here; if it does, no telemetry, no raise
        logger.debug("telemetry: no context for %s", address.key, exc_info=True)
        return
    published = startup.published_lease(context)
    if published is not None:  # the host's tree is live or lingers: no wait for the registry
        handle._bind(context, published.lease, published.holders)
        return
    try:
        config = TreeConfig(
            address=address,
            settings=settings,
            transport=_transport(settings, session),
            driver_version=driver.version,
        )
        # From a logging handler, our own start-up or the registry's thread, asking the
        # registry could wait for ourselves: no tree then, and the events are counted.
        wait = not (in_logging_handler() or _on_registry_thread())
        registry = startup.registry() if wait else None
        if registry is None:
            _refuse(handle, context, "called back from inside telemetry or a logging handler")
            return
        lease: HostLease | None = ask(
            registry,
            Connect(host=address.key, context=context, tree_config=config),
            ASK_TIMEOUT_S,
        )
        if lease is None:  # the registry is shutting down: a tree now would outlive it
            _refuse(handle, context, "shutting down")
            return
        state.shutdown_timeout_s = max(state.shutdown_timeout_s or 0.0, settings.shutdown_timeout_s)
        handle._bind(context, lease)
    except Exception as exc:
        # e.g. no new threads at interpreter shutdown (3.12.1, gh-113964), or a registry that
        # did not answer in time
        _refuse(handle, context, type(exc).__name__)


def _on_registry_thread() -> bool:
    return threading.current_thread().name.startswith("RegistryActor-")


def _refuse(handle: Connection, context: ConnectionContext, why: str) -> None:
    """No tree for this connection: its events are counted as dropped, not lost."""
    if not cannot_wait():  # never log from a logging handler's call: no loop of records
        logger.debug("telemetry: no tree for %s (%s); its events are dropped", handle.host, why)
    lane = EventLane(capacity=1, wake=_no_wake)
    lane.close()
    handle._context, handle._lane = context, lane


def _no_wake() -> None:
    """The wake-up of a lane without a tree: never reached, its lane is closed."""


def _transport(settings: TelemetrySettings, session: SessionLike | None) -> Transport:
    if settings.sink == "file" and settings.file_path:
        return FileTransport(settings.file_path)
    if settings.sink == "otlp":
        return _collector(settings)
    connect_s, read_s = settings.connect_timeout_s, settings.read_timeout_s
    service: Transport
    if session is not None:
        service = SessionTransport(session, connect_timeout_s=connect_s, read_timeout_s=read_s)
    else:
        pool = startup.pool()
        service = Urllib3Transport(pool, connect_timeout_s=connect_s, read_timeout_s=read_s)
    return MirrorTransport(service, _collector(settings)) if settings.sink == "both" else service


def _collector(settings: TelemetrySettings) -> OtlpTransport:
    """The OTLP sink on the shared pool; never the driver's session (no driver auth goes there)."""
    return OtlpTransport(settings, inner=otlp_http(startup.pool(), settings))
