"""Item 3: events per second one host's tree absorbs with zero drops, and where drops begin.

For each settings profile and each number of driver threads (one connection per thread, all to
one host, sharing one auth provider as a pooled driver's connections do):

1. flood: every thread tells statements as fast as it can; the tree's processing capacity is
   the events told divided by the time until the aggregator has received them all;
2. paced steps from a candidate rate (below both that capacity and the export policy's ceiling,
   rate_limit_per_s x batch_size x 5 events): down by 10 % until one holds, then up by 15 %
   until one does not.

A paced step holds when nothing is dropped and the backlog does not grow: told minus exported
minus dropped, plus the rate-limit tokens spent from the burst (each stands for a batch sent
ahead of the refill), sampled every 0.25 s; its growth over the step's second half must stay
under 5 % of the offered rate (or, for short steps, under what a one-batch saw-tooth explains).
Every step uses a fresh tree (fresh accounts and token bucket).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from _common import (
    auth_headers,
    ids,
    only_registry_left,
    rss_bytes,
    wait_flags,
    wait_until,
)
from _endpoint import EndpointProcess
from _statement_events import EVENTS_PER_STATEMENT, Pacer, tell_statement

import actors
from messages.config import TelemetrySettings
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")
PROFILES: dict[str, dict[str, Any]] = {
    "defaults": {},
    # A high-volume deployment: bigger batches (500 logs ~ 0.5 MB, under the endpoint's 1 MiB
    # body limit) and more requests per second, so the export policy is not the limit.
    "tuned": {"batch_size": 500, "rate_limit_per_s": 25.0},
}
_GROWTH_LIMIT = 0.05


def export_ceiling(settings: TelemetrySettings) -> float:
    """Events/s the export policy lets through: requests/s x logs per request x events per log."""
    return settings.rate_limit_per_s * settings.batch_size * EVENTS_PER_STATEMENT


class Tree:
    """`threads` connections to one host, opened together and closed together."""

    def __init__(self, endpoint: EndpointProcess, settings: TelemetrySettings, threads: int):
        self.endpoint = endpoint
        self.settings = settings
        self.connections = [
            actors.connect(endpoint.url, driver=DRIVER, auth=auth_headers, settings=settings)
            for _ in range(threads)
        ]
        if not wait_flags({endpoint.host_port: True}, 10.0):
            raise RuntimeError("feature flag not fetched within 10 s")
        # The host's accounting also holds earlier trees and events a full lane refused at the
        # facade (never received by an aggregator): this tree's share is what it adds from now.
        self._base = dict(self.report().get("accounting", {}))

    def report(self) -> dict[str, Any]:
        """The live tree's report (aggregator, exporter): this tree's accounts only."""
        host: dict[str, Any] = actors.dump_state(timeout_s=2.0)["hosts"].get(
            self.endpoint.host_port, {}
        )
        return host

    def accounts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """This tree's aggregator and exporter snapshots ({} while busy).

        `received` and `dropped` include the events a full lane refused at the facade.
        """
        report = self.report()
        aggregator = report.get("aggregator", {})
        exporter = report.get("exporter", {})
        accounting = report.get("accounting", {})
        if "received" not in aggregator or "told" not in accounting:
            return {}, exporter
        base_dropped = self._base.get("dropped", {})
        dropped = {
            reason: n - base_dropped.get(reason, 0)
            for reason, n in accounting["dropped"].items()
            if n - base_dropped.get(reason, 0)
        }
        told = accounting["told"] - self._base.get("told", 0)
        return {**aggregator, "received": told, "dropped": dropped}, exporter

    def close(self) -> None:
        """Close every connection and wait for the tree's threads to end."""
        for connection in self.connections:
            connection.close()
        wait_until(only_registry_left, 10.0)


def _flood(endpoint: EndpointProcess, settings: TelemetrySettings, threads: int, duration_s: float):
    tree = Tree(endpoint, settings, threads)
    rss0 = rss_bytes()
    counts = [0] * threads
    stop = threading.Event()

    def body(index: int) -> None:
        sids = ids(2000)
        tell = tree.connections[index].tell
        n = 0
        while not stop.is_set():
            for sid in sids[n % 2000 : n % 2000 + 50]:
                tell_statement(tell, sid)
            n += 50
        counts[index] = n

    workers = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    stop.wait(duration_s)
    stop.set()
    for worker in workers:
        worker.join(10.0)
    told = sum(counts) * EVENTS_PER_STATEMENT
    told_s = time.perf_counter() - start
    rss_peak = rss_bytes()

    def caught_up() -> bool:
        return int(tree.accounts()[0].get("received", 0)) >= told

    wait_until(caught_up, 60.0, 0.02)
    processed_s = time.perf_counter() - start
    aggregator, _ = tree.accounts()
    tree.close()
    return {
        "offered_per_s": told / told_s,
        "processed_per_s": told / processed_s,
        "told": told,
        "dropped": aggregator.get("dropped", {}),
        "rss_growth_mb": (rss_peak - rss0) / 2**20,
    }


def _paced(
    endpoint: EndpointProcess,
    settings: TelemetrySettings,
    threads: int,
    rate_per_s: float,
    duration_s: float,
) -> dict[str, Any]:
    tree = Tree(endpoint, settings, threads)
    stop = threading.Event()
    per_thread = rate_per_s / EVENTS_PER_STATEMENT / threads
    pacers = [Pacer(c.tell, per_thread, ids(4000)) for c in tree.connections]
    workers = [
        threading.Thread(target=p.run, args=(duration_s, stop, time.perf_counter), daemon=True)
        for p in pacers
    ]
    batch_events = settings.batch_size * EVENTS_PER_STATEMENT
    burst = settings.rate_limit_burst
    samples: list[tuple[float, float, int]] = []
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    pause = threading.Event()
    while any(w.is_alive() for w in workers):
        pause.wait(0.25)
        now = time.perf_counter() - start
        told = sum(p.told_statements for p in pacers) * EVENTS_PER_STATEMENT
        aggregator, exporter = tree.accounts()
        if not aggregator or not exporter.get("rate_limit"):
            continue  # an actor was busy past the dump's timeout: no sample this time
        tokens = float(exporter["rate_limit"]["tokens"])
        exported = int(aggregator["exported"])
        dropped = sum(aggregator["dropped"].values())
        backlog = told - exported - dropped + (burst - tokens) * batch_events
        samples.append((now, backlog, dropped))
    for worker in workers:
        worker.join(10.0)
    told_total = sum(p.told_statements for p in pacers) * EVENTS_PER_STATEMENT
    actors.flush(timeout_s=5.0)
    aggregator, _ = tree.accounts()
    tree.close()
    dropped = aggregator.get("dropped", {"unknown": -1})
    half = [s for s in samples if s[0] >= duration_s / 2]
    growth_per_s = _slope(half)
    # Exports go out a batch at a time, so the backlog saw-tooths by a batch: over a short half
    # step that alone can look like growth. The limit is never below what it can explain.
    limit_per_s = max(_GROWTH_LIMIT * rate_per_s, batch_events / (duration_s / 2))
    # Above the export ceiling a step can only look held until the rate limiter's burst and the
    # bounded queues are used up (drops follow): it does not count as sustained.
    under_ceiling = rate_per_s <= export_ceiling(settings)
    holds = not dropped and growth_per_s <= limit_per_s and under_ceiling
    return {
        "rate_per_s": rate_per_s,
        "achieved_per_s": told_total / duration_s,
        "holds": holds,
        "above_export_ceiling": not under_ceiling,
        "dropped": dropped,
        "backlog_growth_per_s": growth_per_s,
        "max_backlog_events": max((s[1] for s in samples), default=0.0),
    }


def _slope(samples: list[tuple[float, float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(s[0] for s in samples) / n
    mean_b = sum(s[1] for s in samples) / n
    var = sum((s[0] - mean_t) ** 2 for s in samples)
    if var == 0:
        return 0.0
    return sum((s[0] - mean_t) * (s[1] - mean_b) for s in samples) / var


def _search(
    endpoint: EndpointProcess,
    settings: TelemetrySettings,
    threads: int,
    rate: float,
    step_s: float,
    max_steps: int,
) -> list[dict[str, Any]]:
    """Paced steps: down by 10 % until one holds, then up by 15 % until one does not."""
    steps = [_paced(endpoint, settings, threads, rate, step_s)]
    factor = 1.15 if steps[0]["holds"] else 0.9
    while len(steps) < max_steps and steps[-1]["holds"] == steps[0]["holds"]:
        rate *= factor
        steps.append(_paced(endpoint, settings, threads, rate, step_s))
    return steps


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Flood and paced steps for every profile and thread count (fewer with --quick)."""
    flood_s, step_s, max_steps = (0.5, 1.5, 2) if quick else (2.0, 4.0, 3)
    plan = {"defaults": (4,), "tuned": (1, 4, 16)} if quick else dict.fromkeys(PROFILES, (1, 4, 16))
    out: dict[str, Any] = {"flood_s": flood_s, "step_s": step_s, "profiles": {}}
    with EndpointProcess(flag=True) as endpoint:
        for profile, thread_counts in plan.items():
            overrides = PROFILES[profile]
            settings = TelemetrySettings(**overrides)
            ceiling = export_ceiling(settings)
            results: dict[str, Any] = {"settings": overrides, "export_ceiling_per_s": ceiling}
            for threads in thread_counts:
                flood = _flood(endpoint, settings, threads, flood_s)
                capacity = min(0.9 * flood["processed_per_s"], ceiling)
                steps = _search(endpoint, settings, threads, 0.95 * capacity, step_s, max_steps)
                held = [s["rate_per_s"] for s in steps if s["holds"]]
                failed = [s["rate_per_s"] for s in steps if not s["holds"]]
                results[str(threads)] = {
                    "flood": flood,
                    "steps": steps,
                    "sustained_per_s": max(held) if held else None,
                    "drops_begin_per_s": min(failed) if failed else None,
                }
            out["profiles"][profile] = results
        actors.shutdown(2.0)
    return out
