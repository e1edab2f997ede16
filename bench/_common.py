"""Shared helpers of the benchmark suite: statistics, clocks, per-thread CPU, RSS, polling."""

from __future__ import annotations

import gc
import math
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` from a checkout, package not installed
    sys.path.insert(0, str(ROOT))

TOKEN = "bench-token"
pc_ns = time.perf_counter_ns


def auth_headers() -> dict[str, str]:
    """The bearer token the bench endpoint wants on `/telemetry-ext`."""
    return {"Authorization": f"Bearer {TOKEN}"}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


def summary(values: Iterable[float]) -> dict[str, Any]:
    """Median and spread of one figure over repeated runs (min, max, spread % of the median)."""
    data = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not data:
        return {"median": None, "min": None, "max": None, "spread_pct": None, "values": []}
    med = statistics.median(data)
    spread = (max(data) - min(data)) / abs(med) * 100 if med else 0.0
    return {
        "median": med,
        "min": min(data),
        "max": max(data),
        "spread_pct": spread,
        "values": data,
    }


def timer_overhead_ns(samples: int = 20_000) -> float:
    """The median cost of an empty `perf_counter_ns()` pair, subtracted from per-call timings."""
    out = [0] * samples
    for i in range(samples):
        t0 = pc_ns()
        out[i] = pc_ns() - t0
    out.sort()
    return float(out[samples // 2])


def thread_cpu_ns(native_id: int) -> int:
    """CPU time one thread of this process has used (Linux schedstat), or -1 if unknown."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def threads_cpu_ns(prefixes: Sequence[str]) -> dict[str, int]:
    """CPU time per thread-name prefix, summed over live threads of this process."""
    out = dict.fromkeys(prefixes, 0)
    for thread in threading.enumerate():
        for prefix in prefixes:
            if thread.name.startswith(prefix) and thread.native_id is not None:
                cpu = thread_cpu_ns(thread.native_id)
                if cpu >= 0:
                    out[prefix] += cpu
    return out


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def wait_until(condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.01) -> Any:
    """Poll `condition` until truthy (returned) or the deadline passes (returns the last value)."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        pause.wait(interval_s)


def ids(count: int) -> list[str]:
    """Fresh statement ids, made before timing starts (a driver already has them)."""
    return [str(uuid.uuid4()) for _ in range(count)]


class quiet_gc:
    """Collect garbage before a timed block so one run's garbage does not bill the next."""

    def __enter__(self) -> None:
        gc.collect()

    def __exit__(self, *exc: object) -> None:
        return None


def telemetry_threads() -> list[threading.Thread]:
    """Live threads belonging to telemetry actor trees."""
    prefixes = (
        "RegistryActor-",
        "HostSupervisor-",
        "FeatureFlagActor-",
        "AggregatorActor-",
        "ExporterActor-",
        "telemetry-timer-",
    )
    return [t for t in threading.enumerate() if t.name.startswith(prefixes) and t.is_alive()]


def only_registry_left() -> bool:
    """True once every host tree's threads have ended (the registry and its timer may stay)."""
    return all(
        t.name.startswith("RegistryActor-") or t.name == "telemetry-timer-registry"
        for t in telemetry_threads()
    )


def wait_flags(expected: dict[str, bool], timeout_s: float) -> bool:
    """Wait until each host's tree (by host key) has learnt the expected feature flag."""
    import actors

    def known() -> bool:
        hosts = actors.dump_state(timeout_s=2.0)["hosts"]
        return all(
            hosts.get(key, {}).get("feature_flags", {}).get("enabled") is value
            for key, value in expected.items()
        )

    return bool(wait_until(known, timeout_s, 0.02))
