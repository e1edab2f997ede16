"""The facade's process-wide state: the registry and pool handles, fork epoch, unrouted drops."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

import pykka

from messages.accounts import Accounts
from messages.commands import FacadeDropped
from messages.snapshots import HostHistory

__all__ = [
    "ASK_TIMEOUT_S",
    "EXIT_MARGIN_S",
    "Ending",
    "FastLease",
    "Holders",
    "ProcessState",
    "ask",
    "cannot_wait",
    "count_of",
    "drop",
    "guarded",
    "in_logging_handler",
    "on_own_thread",
    "overflow",
    "overflowed",
    "own_threads",
    "reentered",
    "state",
]

logger = logging.getLogger("actors")

ASK_TIMEOUT_S = 2.0
EXIT_MARGIN_S = 0.1


class Ending(Protocol):
    """Something of ours that tells its last events when it ends (an instrumented session)."""

    def end_at_exit(self) -> None:
        """Tell the last events now, if not told yet; never raises."""


class Holders:
    """The connections holding leases on one live tree, shared by the registry and drivers.

    `ids` is the registry's own count of the tree's connections (`HostEntry.connections`): the
    registry adds the connects it is told or asked, and a connect that takes the published lease
    adds its own id on its thread, before it checks the lease is still valid; its close discards
    it there and tells the registry only when that left the set empty. A set's add and discard of
    an int are atomic, so no lock: the registry reads the set whenever it would linger or stop,
    and a connect it does not see then finds the lease expired or unpublished. `told` is the
    last (auth, user agent, workspace) the registry was told (any thread writes it; a stale read
    costs one more message). `latest` is the newest such connection's context, authenticated if
    any was (driver threads write it, the flag fetcher reads it when it fetches). `connects` and
    `disconnects` count, atomically, those that sent no message, for the registry's counts.
    """

    __slots__ = ("connects", "disconnects", "ids", "latest", "told")

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.told: tuple[Any, ...] | None = None
        self.latest: Any = None  # a `ConnectionContext`
        self.connects = itertools.count()
        self.disconnects = itertools.count()


class FastLease:
    """A live tree's lease a connect may take without asking the registry, until `reuse_until`.

    Published only by the registry's thread (replaced, never changed). `reuse_until` (monotonic)
    is infinite while the tree has connections and ends a margin before an idle tree's linger
    does. A connect joins `holders` first, then reads the published lease again: the registry
    stops a tree only after its linger ended with no holders, so a connect it did not see finds
    the lease expired or gone and asks instead.
    """

    __slots__ = ("holders", "lease", "reuse_until")

    def __init__(self, lease: Any, reuse_until: float, holders: Holders) -> None:
        self.lease = lease
        self.reuse_until = reuse_until
        self.holders = holders


class ProcessState:
    """Process-wide state of the facade; reset in a forked child."""

    def __init__(self) -> None:
        # Guards only the publishing of the registry and pool handles (attribute reads and
        # writes): nothing that can log, start actors or call user code runs while it is held,
        # and it is taken only inside `guarded()`, so a reentrant call never waits for it.
        self.lock = threading.Lock()
        self.registry: pykka.ActorRef[Any] | None = None
        self.pool: Any = None
        self.epoch = 0
        # The largest shutdown timeout of any connection opened; None until one is.
        self.shutdown_timeout_s: float | None = None
        self.exit_hook = False
        # Set when the exit hook runs: no tree starts afterwards (nothing would drain it).
        self.exited = False
        # Sessions whose end (the close log) the exit hook tells before its drain, by id, each
        # held weakly; its weakref callback removes it (a dict's set and pop are atomic, no
        # lock). Left to weakref.finalize they would end in weakref's own exit hook, which runs
        # after ours whenever the process made a finaliser before ours was registered.
        self.ending: dict[int, weakref.ref[Ending]] = {}
        # Whether this process's multiprocessing exit hook is registered (see `startup`).
        self.mp_exit_hook = False
        # What registries that were shut down left: per-host totals (bounded, the oldest hosts
        # folded into `retired_forgotten`) and the last one's counts. Written by the one
        # `shutdown()` that unpublished that registry, under the lock (pure data, nothing logs).
        self.retired: dict[str, HostHistory] = {}
        self.retired_forgotten = Accounts()
        self.retired_forgotten_hosts = 0
        self.retired_counts: dict[str, Any] | None = None
        # Events told with no registry to count them: next() on a C counter is atomic, no lock.
        self.unrouted = itertools.count()
        # Events a full lane refused, per host: counted on the driver's thread without a message
        # (a flood must not move its backlog into the registry's inbox); read by dump_state.
        self.overflowed: dict[str, itertools.count[int]] = {}
        # Leases of live trees by host, written only by the published registry's thread (one
        # writer, whole entries replaced); `connect()` reads them: a stale read is one the
        # registry's inbox order makes safe (see `FastLease`).
        self.leases: dict[str, FastLease] = {}


state = ProcessState()


class _Reentry(threading.local):
    """Per thread: how deep this thread is inside our own start-up or publishing code."""

    depth = 0


_reentry = _Reentry()

# pykka names an actor's thread "<ActorClass>-<n>"; the timer names its threads itself.
_OWN_THREADS = (
    "RegistryActor-",
    "HostSupervisor-",
    "FeatureFlagActor-",
    "AggregatorActor-",
    "ExporterActor-",
    "telemetry-timer-",
)


def reentered() -> bool:
    """True when this thread is already inside our start-up code (a logging or signal handler
    called back into the facade from there): the caller must not wait, nor start anything."""
    return _reentry.depth > 0


def on_own_thread() -> bool:
    """True on one of telemetry's own threads (a logging handler or an auth callable running
    there): waiting for our actors from here would wait for ourselves."""
    return threading.current_thread().name.startswith(_OWN_THREADS)


def own_threads() -> list[threading.Thread]:
    """Telemetry's threads alive now (actors and timers)."""
    return [t for t in threading.enumerate() if t.name.startswith(_OWN_THREADS)]


# While a logging handler runs, `logging` holds that handler's lock; an actor of ours that logs
# meanwhile waits for it, so a handler that waited for our actors would wait forever.
_LOGGING_CODE = frozenset({logging.Handler.handle.__code__, logging.Logger.callHandlers.__code__})
_MAX_FRAMES = 200


def in_logging_handler() -> bool:
    """True when called (however indirectly) from a logging handler on this thread."""
    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame.f_code in _LOGGING_CODE:
            return True
        if frame.f_back is None:
            return False
        frame = frame.f_back
    return False


def cannot_wait() -> bool:
    """Whether a facade call here must answer at once rather than wait for our actors: inside
    our own start-up (a signal or `__del__` handler run there), on our own threads, or inside a
    logging handler (whose lock an actor of ours may be waiting for)."""
    return reentered() or on_own_thread() or in_logging_handler()


@contextlib.contextmanager
def guarded(lock: bool = False) -> Iterator[None]:
    """Mark this thread as inside our code (and, with `lock`, hold `state.lock` meanwhile).

    The mark is set before the lock is taken, so a signal handler that interrupts this thread
    and calls back into the facade sees `reentered()` and never waits for a lock it holds.
    """
    _reentry.depth += 1
    try:
        if lock:
            with state.lock:
                yield
        else:
            yield
    finally:
        _reentry.depth -= 1


def count_of(counter: itertools.count[int]) -> int:
    """The next value an `itertools.count` would yield, without taking it."""
    return int(repr(counter)[len("count(") : -1])


def _after_fork_in_child() -> None:
    """The parent's threads do not exist here: forget its actors and sockets, and free locks
    that a parent thread held at the fork (it will never release them in this process)."""
    state.lock = threading.Lock()
    _reentry.depth = 0  # forked from inside our start-up (a handler that forks): start afresh
    state.registry = None
    state.pool = None
    state.overflowed = {}
    state.leases = {}
    state.mp_exit_hook = False  # multiprocessing clears its finalisers in a child it starts
    state.exited = False
    state.ending = {}  # the parent's sessions: the parent ends them, not this child
    state.epoch += 1
    _free_pykka_registry_lock()


def _free_pykka_registry_lock() -> None:
    """pykka's registry lock, if a parent thread held it at the fork, is replaced by a free one.

    Only a lock nobody here can ever release is replaced: free (or held by the forking thread
    itself, as an RLock lets it take it again), it is left as it is.
    """
    registry = pykka.ActorRegistry
    lock = registry._actor_refs_lock
    if lock.acquire(blocking=False):
        lock.release()
        return
    registry._actor_refs_lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def ask(ref: pykka.ActorRef[Any], message: Any, timeout_s: float) -> Any:
    """Ask with a timeout (only the facade asks; actors never do)."""
    return ref.ask(message, timeout=timeout_s)


def drop(host: str, reason: str, count: int = 1) -> None:
    """Count `count` events the facade could not hand to a tree; never raises."""
    try:
        registry = state.registry
        if registry is not None:
            registry.tell(FacadeDropped(host=host, reason=reason, count=count))
            return
    except Exception:
        logger.debug("telemetry: could not count a %s drop", reason)
    for _ in range(count):  # no registry (after shutdown): an atomic count, read by dump_state
        next(state.unrouted)


def overflow(host: str) -> None:
    """Count one event refused by a full lane: an atomic count, no lock and no message."""
    counter = state.overflowed.get(host)
    if counter is None:  # setdefault with a str key is atomic: racing first drops share one
        counter = state.overflowed.setdefault(host, itertools.count())
    next(counter)


def overflowed() -> dict[str, int]:
    """Events refused by full lanes so far, per host."""
    return {host: count_of(counter) for host, counter in list(state.overflowed.items())}
