"""Commands (verbs) and facts (past tense) the actors exchange; the driver never sees these.

Nothing here imports pykka: references to actors are typed as `Teller` (anything with `tell`),
and one-shot replies travel as `Reply` (anything with `set`, e.g. a pykka future).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from messages.config import TelemetrySettings
from messages.records import FrontendLog, SystemConfiguration
from messages.snapshots import BreakerSnapshot, TreeFinal, frozen_mapping
from messages.transport import Transport

__all__ = [
    "Abandon",
    "ActorHandle",
    "AuthProvider",
    "BatchSettled",
    "Connect",
    "ConnectionContext",
    "Disconnect",
    "Drain",
    "Drained",
    "DumpState",
    "ExportBatch",
    "FacadeDropped",
    "FlagDecided",
    "FlagReading",
    "Flush",
    "FlushTick",
    "HostLease",
    "HostOrigin",
    "LingerEnded",
    "ListHosts",
    "Pump",
    "RefreshFlag",
    "Reply",
    "RestoreBreaker",
    "RetryBatch",
    "ShutdownAll",
    "Stop",
    "Teller",
    "TreeConfig",
    "TreeStopped",
    "UseConnection",
]

AuthProvider = Callable[[], Mapping[str, str]]
"""Returns the connection's current auth headers (e.g. ``{"Authorization": "Bearer …"}``)."""


class Teller(Protocol):
    """Anything a message can be told to (a pykka `ActorRef`)."""

    def tell(self, message: Any) -> None:
        """Deliver `message` without waiting."""


class ActorHandle(Teller, Protocol):
    """A `Teller` that can say whether it still listens (a pykka `ActorRef`)."""

    def is_alive(self) -> bool:
        """False once the actor has stopped."""


class Reply(Protocol):
    """A one-shot reply slot (a pykka `ThreadingFuture`)."""

    def set(self, value: Any = None) -> None:
        """Fill the slot; the waiter wakes up."""


@attrs.frozen(kw_only=True, eq=False)
class ConnectionContext:
    """What the exporter needs to send one connection's logs: its own auth, never another's."""

    connection_id: int
    host: str
    auth: AuthProvider | None
    user_agent: str
    system_configuration: SystemConfiguration
    workspace_id: int | None = None


def _logs(value: Iterable[FrontendLog]) -> tuple[FrontendLog, ...]:
    return value if isinstance(value, tuple) else tuple(value)


def _counts(value: Iterable[int]) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else tuple(value)


# --- registry ---------------------------------------------------------------------------------


class HostOrigin(Protocol):
    """A normalised host (`actors._runtime.hosts.HostAddress`): its key and where to send."""

    @property
    def key(self) -> str:
        """``host[:port]``, lower case: one per server."""

    @property
    def base_url(self) -> str:
        """``scheme://key``."""


class FlagReading(Protocol):
    """The host's feature flag as driver threads read it (`actors.feature_flags.FlagView`)."""

    @property
    def enabled(self) -> bool | None:
        """None until decided."""

    @property
    def expires_at(self) -> float | None:
        """Monotonic expiry of the decision, if it has one."""


@attrs.frozen(kw_only=True)
class TreeConfig:
    """What a host's tree is built from: the first connection's settings and transport."""

    address: HostOrigin
    settings: TelemetrySettings
    transport: Transport
    driver_version: str


@attrs.frozen(kw_only=True)
class Connect:
    """Ask the registry for a lease on a host's tree, starting the tree on first use.

    Told with `reuse` (a generation) and no `tree_config`, it only joins that tree, if live: the
    facade took the tree's published lease without asking.
    """

    host: str
    context: ConnectionContext
    tree_config: TreeConfig | None
    reuse: int | None = None


@attrs.frozen(kw_only=True)
class HostLease:
    """The registry's answer to `Connect`: where to tell events, and the host's flag view."""

    generation: int
    aggregator: ActorHandle
    flag: FlagReading


@attrs.frozen(kw_only=True)
class Disconnect:
    """Release a lease; the last release of a host drains and stops its tree.

    `counted`: the close of a connection that took the published lease, counted on its own
    thread (`Holders`) and told only because it left the tree without holders.
    """

    host: str
    generation: int
    connection_id: int
    counted: bool = False


@attrs.frozen(kw_only=True)
class FacadeDropped:
    """Events the facade dropped before they reached a tree (e.g. told after close)."""

    host: str
    reason: str
    count: int = 1


@attrs.frozen(kw_only=True)
class LingerEnded:
    """Timer fact: a host's idle tree lingered its time; stop it unless a connect came."""

    host: str
    generation: int


@attrs.frozen(kw_only=True)
class ListHosts:
    """Ask the registry for its live, stopping and finished hosts (a `HostListing`)."""


@attrs.frozen(kw_only=True)
class ShutdownAll:
    """Drain and stop every tree by `deadline_s` (monotonic); answers the pending replies."""

    deadline_s: float


@attrs.frozen(kw_only=True)
class TreeStopped:
    """A host tree drained and stopped; carries its final accounts and breaker."""

    host: str
    final: TreeFinal


# --- supervisor, aggregator, exporter ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class UseConnection:
    """A connection joined the host; the flag fetcher may use its auth."""

    context: ConnectionContext


@attrs.frozen(kw_only=True)
class Stop:
    """Drain the host's tree by `deadline_s` (monotonic), stop it, then set `reply`."""

    deadline_s: float
    reply: Reply | None = None


@attrs.frozen(kw_only=True)
class Drain:
    """Emit everything and export it by `deadline_s` (monotonic); then tell `notify` `Drained`."""

    deadline_s: float
    notify: Teller


@attrs.frozen(kw_only=True)
class Drained:
    """The final drain finished; `snapshot` is the sender's final state (if it keeps accounts),
    `breaker` the exporter's last breaker (for the host's next tree), relayed by the aggregator."""

    snapshot: Mapping[str, Any] | None = attrs.field(
        default=None, converter=attrs.converters.optional(frozen_mapping)
    )
    breaker: BreakerSnapshot | None = None


@attrs.frozen(kw_only=True)
class Abandon:
    """The drain deadline passed: count what is still in flight as dropped and report."""


@attrs.frozen(kw_only=True)
class Flush:
    """Export what is queued now (not open statements); `reply` is set when attempted."""

    reply: Reply | None = None


@attrs.frozen(kw_only=True)
class FlushTick:
    """Timer fact: the flush interval elapsed."""


@attrs.frozen(kw_only=True)
class DumpState:
    """Ask an actor for a JSON-serialisable snapshot of its state."""


@attrs.frozen(kw_only=True)
class RefreshFlag:
    """Timer fact: fetch the feature flag again."""


@attrs.frozen(kw_only=True)
class FlagDecided:
    """The feature flag for the host is known: export (True) or discard (False)."""

    enabled: bool


@attrs.frozen(kw_only=True)
class ExportBatch:
    """Logs of one connection to send together; `event_counts[i]` events made `logs[i]`."""

    batch_id: int
    context: ConnectionContext
    logs: tuple[FrontendLog, ...] = attrs.field(converter=_logs)
    event_counts: tuple[int, ...] = attrs.field(converter=_counts)
    reply_to: Teller


@attrs.frozen(kw_only=True)
class RetryBatch:
    """Timer fact: try a batch again."""

    batch_id: int


@attrs.frozen(kw_only=True)
class Pump:
    """Timer fact: the rate limiter has a token again; send what is queued."""


@attrs.frozen(kw_only=True)
class RestoreBreaker:
    """The host's previous tree stopped: continue from its breaker, unless already under way."""

    snapshot: BreakerSnapshot


@attrs.frozen(kw_only=True)
class BatchSettled:
    """A batch left the exporter: how many of its events were exported and dropped, by reason."""

    batch_id: int
    exported_events: int
    exported_logs: int
    dropped: Mapping[str, int] = attrs.field(converter=frozen_mapping)
