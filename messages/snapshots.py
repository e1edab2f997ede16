"""State that crosses actors as records: a breaker handed to a host's next tree, a tree's end.

Actors hand these on as they are; `dump_state()` turns them into JSON once, with `to_json`.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

import attrs
import cattrs

from messages.accounts import Accounts, snapshot_json

__all__ = [
    "RECENT_FINALS",
    "BreakerSnapshot",
    "BreakerState",
    "HostHistory",
    "HostListing",
    "ListedTree",
    "TreeFinal",
    "frozen_mapping",
    "merge_histories",
    "to_json",
]

TreeT = TypeVar("TreeT")

RECENT_FINALS = 4
"""Final snapshots a host's history keeps, for their detail; the rest live on as totals."""


def frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy: a message never shares a dict its sender may still change."""
    return types.MappingProxyType(dict(value))


def _pairs(value: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    if isinstance(value, Mapping):
        return tuple(sorted(value.items()))
    return tuple(value)


class BreakerState(enum.Enum):
    """Where the breaker stands: letting calls through, refusing them, or probing."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@attrs.frozen(kw_only=True)
class BreakerSnapshot:
    """A circuit breaker's state; the next tree of the same host continues from it.

    `transitions` counts moves by ``"FROM->TO"`` key, as pairs so that nothing mutable is
    shared; the JSON form is an object.
    """

    state: BreakerState
    consecutive_failures: int = 0
    half_open_successes: int = 0
    probe_outstanding: bool = False
    opened_for_s: float | None = None
    reopens_in_s: float | None = None
    transitions: tuple[tuple[str, int], ...] = attrs.field(default=(), converter=_pairs)


@attrs.frozen(kw_only=True)
class TreeFinal:
    """A host tree's last word: its final snapshot, or that it stopped before it came.

    `snapshot` is the aggregator's final snapshot (None when the drain deadline passed first),
    whose ``accounts`` entry is the tree's `Accounts`; `breaker` is the exporter's final
    breaker, for the host's next tree.
    """

    generation: int
    snapshot: Mapping[str, Any] | None = attrs.field(
        default=None, converter=attrs.converters.optional(frozen_mapping)
    )
    breaker: BreakerSnapshot | None = None

    @property
    def accounts(self) -> Accounts | None:
        """The tree's final accounts, if its snapshot came."""
        record = self.snapshot.get("accounts") if self.snapshot is not None else None
        return record if isinstance(record, Accounts) else None

    @property
    def timed_out(self) -> bool:
        """True when the tree stopped at its deadline without a final snapshot."""
        return self.snapshot is None

    @property
    def cut_short(self) -> bool:
        """True when the drain did not finish cleanly (timed out, or dropped at the deadline)."""
        accounts = self.accounts
        return accounts is None or accounts.dropped_of("shutdown_timeout") > 0


def _finals(value: Iterable[TreeFinal]) -> tuple[TreeFinal, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class HostHistory:
    """A host's stopped trees folded into totals: a bounded record however many trees stopped.

    `totals` adds up the final accounts of every tree that reported them, plus the events the
    facade dropped for the host; `incomplete` counts trees that stopped without final accounts;
    `exported_logs` sums the logs those trees exported; `recent` keeps only the last few
    finals, for their detail.
    """

    host: str
    trees: int = 0
    incomplete: int = 0
    exported_logs: int = 0
    totals: Accounts = attrs.field(factory=Accounts)
    recent: tuple[TreeFinal, ...] = attrs.field(default=(), converter=_finals)

    def plus(self, other: HostHistory) -> HostHistory:
        """This history and `other` (of the same host, from another registry) together."""
        return HostHistory(
            host=self.host,
            trees=self.trees + other.trees,
            incomplete=self.incomplete + other.incomplete,
            exported_logs=self.exported_logs + other.exported_logs,
            totals=self.totals.plus(other.totals),
            recent=(*self.recent, *other.recent)[-RECENT_FINALS:],
        )


@attrs.frozen(kw_only=True)
class ListedTree(Generic[TreeT]):
    """A tree the registry knows: live (with `refcount` leases, `lingering` when 0) or stopping."""

    host: str
    tree: TreeT
    refcount: int
    lingering: bool = False


def merge_histories(
    into: Mapping[str, HostHistory], more: Iterable[HostHistory]
) -> dict[str, HostHistory]:
    """`into` with `more` added host by host (totals and counts add up; recent finals join)."""
    merged = dict(into)
    for history in more:
        past = merged.get(history.host)
        merged[history.host] = history if past is None else past.plus(history)
    return merged


def _listed(value: Iterable[ListedTree[Any]]) -> tuple[ListedTree[Any], ...]:
    return tuple(value)


def _histories(value: Iterable[HostHistory]) -> tuple[HostHistory, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class HostListing(Generic[TreeT]):
    """The registry's answer to `ListHosts`: every tree that may hold events, and the history.

    `forgotten` sums the hosts dropped from `history` beyond its bound, so process-wide totals
    stay exact however many hosts came and went.
    """

    live: tuple[ListedTree[TreeT], ...] = attrs.field(converter=_listed)
    stopping: tuple[ListedTree[TreeT], ...] = attrs.field(converter=_listed)
    history: tuple[HostHistory, ...] = attrs.field(converter=_histories)
    forgotten: Accounts
    forgotten_hosts: int
    connects: int
    disconnects: int
    handler_errors: int


_json = cattrs.Converter()
_json.register_unstructure_hook(
    BreakerSnapshot,
    lambda snap: {
        "state": snap.state.value,
        "consecutive_failures": snap.consecutive_failures,
        "half_open_successes": snap.half_open_successes,
        "probe_outstanding": snap.probe_outstanding,
        "opened_for_s": snap.opened_for_s,
        "reopens_in_s": snap.reopens_in_s,
        "transitions": dict(snap.transitions),
    },
)
_json.register_unstructure_hook(
    TreeFinal,
    lambda final: {
        "generation": final.generation,
        **(
            to_json(snapshot_json(final.snapshot))
            if final.snapshot is not None
            else {"timed_out": True}
        ),
    },
)


def to_json(value: Any) -> Any:
    """The JSON-serialisable form of a state dump: records become objects, tuples lists."""
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return to_json(_json.unstructure(value))
    return value
