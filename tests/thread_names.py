"""The names of the threads telemetry starts, for tests that check none is left behind.

pykka names an actor's thread ``<ActorClass>-<n>``; our timers name theirs ``telemetry-timer-``.
Written here from what the threads are called, not imported from the library, so a test still
notices a thread the library starts under a name its own list forgot.
"""

from __future__ import annotations

import threading

# Everything a host's tree starts: its actors and its timer.
TREE_THREAD_PREFIXES = (
    "HostSupervisor-",
    "FeatureFlagActor-",
    "AggregatorActor-",
    "ExporterActor-",
    "telemetry-timer-",
)
# Everything the facade starts: the registry and the trees.
OUR_THREAD_PREFIXES = ("RegistryActor-", *TREE_THREAD_PREFIXES)


def threads_named(prefixes: tuple[str, ...]) -> list[str]:
    """Names of live threads whose names start with one of `prefixes`."""
    return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]
