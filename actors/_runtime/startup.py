"""The facade's lazy start of the process-wide registry actor and HTTP pool.

No lock is held while anything here starts actors, logs or calls user code: a logging, signal or
`__del__` handler that calls back into the facade from inside a start is told not to wait.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import attrs
import pykka

from actors._export.http import new_pool_manager
from actors._runtime import operations
from actors._runtime.process import FastLease, Holders, guarded, reentered, state
from actors.registry import RegistryActor
from messages.commands import Connect, ConnectionContext, Disconnect
from messages.config import KILL_SWITCH_ENV, TelemetrySettings, env_var_name

__all__ = ["leave", "pool", "published_lease", "registry", "settings_of"]


def registry() -> pykka.ActorRef[Any] | None:
    """The live registry, started on first use; None when this call must not start one.

    No lock is held while the registry starts (pykka logs inside `start()`, and a logging or
    signal handler may connect from there): a reentrant call gets None, and of two threads
    racing to start it, the one that publishes second stops its own.
    """
    registry = state.registry
    if registry is not None and registry.is_alive():
        return registry
    if reentered() or state.exited:  # after the exit hook, nothing would drain a new tree
        return None
    with guarded():
        candidate = RegistryActor.start()
    with guarded(lock=True):
        current = state.registry
        won = current is None or current is registry
        if won:
            state.registry = candidate
    if not won:
        candidate.stop(block=False)
        return current
    _register_multiprocessing_exit()
    return candidate


def _register_multiprocessing_exit() -> None:
    """In a child that multiprocessing started (fork, spawn, forkserver; pool workers too), or
    one forked by hand, the exit hook also runs as a multiprocessing finaliser: fork and
    forkserver children leave by `os._exit()` after running those, never reaching `atexit`.

    Once per process (a forked child registers afresh); `multiprocessing` is never imported
    here by us: a process that has not imported it is not one of its children.
    """
    loaded = sys.modules.get("multiprocessing")
    in_child = loaded is not None and loaded.parent_process() is not None
    if state.mp_exit_hook or not (in_child or state.epoch):
        return
    state.mp_exit_hook = True
    import multiprocessing.util

    multiprocessing.util.Finalize(None, operations.at_exit, exitpriority=100)


def _register_exit_hook() -> None:
    """The one exit hook, registered when the library is imported (it costs nothing unused).

    `atexit` runs handlers last in, first out: every handler the application registers after
    importing us runs before our drain, so what it tells is still delivered. Only handlers
    registered before the import run after it; their events are counted (see `at_exit`).
    """
    with guarded(lock=True):
        if state.exit_hook:
            return
        state.exit_hook = True
    atexit.register(operations.at_exit)


_register_exit_hook()


def pool() -> Any:
    """The shared urllib3 pool manager, created on first use."""
    pool = state.pool
    if pool is None:
        candidate = new_pool_manager()
        if reentered():  # e.g. a signal handler run while this thread publishes: do not wait
            return candidate
        with guarded(lock=True):
            if state.pool is None:
                state.pool = candidate
            pool = state.pool
    return pool


def published_lease(context: ConnectionContext) -> FastLease | None:
    """A live tree's published lease, taken without waiting for the registry, or None.

    The connection joins the lease's `Holders` first, then finds the lease still published and
    valid (see `process.FastLease`). The registry is told the connect only when it brings the
    tree's first credentials (the flag fetcher may fetch again at once with them); other
    connects are counted in `Holders` and send no message, and the flag fetcher reads the
    newest one's context from there when it next fetches.
    """
    host, connection_id = context.host, context.connection_id
    fast, registry = state.leases.get(host), state.registry
    if fast is None or registry is None:
        return None
    holders, generation = fast.holders, fast.lease.generation
    holders.ids.add(connection_id)
    current = state.leases.get(host)
    if current is None or current.holders is not holders or current.reuse_until <= time.monotonic():
        # The tree lingers out or stops: leave it and ask the registry (if this one has
        # stopped, the next one is asked; nothing is logged, this may run in a logging handler).
        with contextlib.suppress(Exception):
            leave(holders, host, generation, connection_id)
        return None
    auth = context.auth
    if auth is not None or holders.latest is None:
        holders.latest = context  # what the flag fetcher uses at its next fetch
    told = holders.told
    if told is not None and (auth is None or told[0] is not None):
        next(holders.connects)  # no first credentials: nothing for the registry to do now
        return current
    holders.told = (auth, context.user_agent, context.workspace_id)
    try:
        registry.tell(Connect(host=host, context=context, tree_config=None, reuse=generation))
    except Exception:  # the registry has stopped: ask the next one
        with contextlib.suppress(Exception):
            leave(holders, host, generation, connection_id)
        return None
    return current


def leave(holders: Holders, host: str, generation: int, connection_id: int) -> None:
    """Leave a tree joined through its published lease; may raise (the registry stopped).

    The registry is told only when that left the tree without holders: it lingers then (a
    linger's end that saw this connection join may have kept the tree for it).
    """
    holders.ids.discard(connection_id)
    registry = state.registry
    if not holders.ids and registry is not None:
        registry.tell(
            Disconnect(host=host, generation=generation, connection_id=connection_id, counted=True)
        )


_ENV_NAMES = (
    *(
        name
        for field in attrs.fields(TelemetrySettings)
        for name in (env_var_name(field.metadata["key"]), field.metadata["otel"])
        if name
    ),
    KILL_SWITCH_ENV,
)
_ENV_KEYS = tuple(os.fsencode(name) for name in _ENV_NAMES)
_SETTINGS_CACHE: dict[Any, TelemetrySettings] = {}
_SETTINGS_CACHE_MAX = 64


def settings_of(properties: Mapping[str, object] | None) -> TelemetrySettings:
    """`TelemetrySettings.from_sources`, remembered for the same properties and environment.

    Resolving 36 settings from the environment costs more than the rest of a connect; a
    short-lived connection with the same properties and environment as the last gets the same
    (immutable) settings. The environment is read anew each time (only our variables), so a
    change takes effect at the next connect.
    """
    data = getattr(os.environ, "_data", None)  # POSIX: the bytes dict behind os.environ
    try:
        if not isinstance(data, dict):
            raise TypeError("no raw environment")
        env = tuple(map(data.get, _ENV_KEYS))
        props = () if properties is None else tuple(sorted(properties.items()))
        key = (props, env)
        cached = _SETTINGS_CACHE.get(key)
    except Exception:  # unhashable or unsortable properties: resolve without the cache
        return TelemetrySettings.from_sources(properties)
    if cached is None:
        environ = {
            name: os.fsdecode(v) for name, v in zip(_ENV_NAMES, env, strict=True) if v is not None
        }
        cached = TelemetrySettings.from_sources(properties, environ)
        if len(_SETTINGS_CACHE) >= _SETTINGS_CACHE_MAX:
            _SETTINGS_CACHE.clear()
        _SETTINGS_CACHE[key] = cached
    return cached
