"""Item 6: memory and queued events during an endpoint outage, and exit time with a hang.

Outage (60 s; 5 s with --quick): four driver threads tell statements at the rate the throughput
section found sustainable (tuned profile, four threads) while the endpoint is healthy, then while
every POST hangs until the read timeout (the worst outage for memory: nothing fails fast, so the
breaker drops nothing early), then healthy again. Every 0.5 s the process RSS and the tree's
pending events (open statements, queued logs, batches handed to the exporter) are sampled. The
configured bound on pending events is
(max_queued_logs + max_pending_batches x batch_size + max_pending_statements) x 5 events, plus
the lane's capacity: events wait there (counted as pending) while the export queue is full.

Exit: a child process (`_exit_child.py`) leaves main while its exporter is stuck in a hanging
POST; the time from its last line until the parent has reaped it must stay within the shutdown
timeout plus 0.3 s.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, auth_headers, ids, only_registry_left, rss_bytes, wait_flags, wait_until
from _endpoint import EndpointProcess
from _statement_events import EVENTS_PER_STATEMENT, Pacer
from throughput import PROFILES

import actors
from messages.config import TelemetrySettings
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")
_THREADS = 4


def pending_bound(settings: TelemetrySettings) -> int:
    """Events the tree may hold at most by configuration, its lane included."""
    logs = (
        settings.max_queued_logs
        + settings.max_pending_batches * settings.batch_size
        + settings.max_pending_statements
    )
    return logs * EVENTS_PER_STATEMENT + settings.lane_capacity


def _sample(host_key: str, started: float) -> dict[str, Any]:
    host = actors.dump_state(timeout_s=0.3)["hosts"].get(host_key, {})
    aggregator = host.get("aggregator", {})
    return {
        "t_s": time.perf_counter() - started,
        "rss_mb": rss_bytes() / 2**20,
        "pending_events": aggregator.get("pending"),
        "queued_logs": aggregator.get("queued_logs"),
        "in_flight_batches": aggregator.get("in_flight_batches"),
        # the host's: a full lane refuses at the facade, counted there, not by the aggregator
        "dropped": host.get("accounting", {}).get("dropped", {}),
    }


def outage(rate_per_s: float, healthy_s: float, outage_s: float) -> dict[str, Any]:
    """Tell at `rate_per_s` through healthy, hanging and healed phases; sample as it goes."""
    settings = TelemetrySettings(**PROFILES["tuned"])
    with EndpointProcess(flag=True) as endpoint:
        connections = [
            actors.connect(endpoint.url, driver=DRIVER, auth=auth_headers, settings=settings)
            for _ in range(_THREADS)
        ]
        if not wait_flags({endpoint.host_port: True}, 10.0):
            raise RuntimeError("feature flag not fetched within 10 s")
        total_s = 2 * healthy_s + outage_s
        stop = threading.Event()
        per_thread = rate_per_s / EVENTS_PER_STATEMENT / _THREADS
        pacers = [Pacer(c.tell, per_thread, ids(20000)) for c in connections]
        workers = [
            threading.Thread(target=p.run, args=(total_s, stop, time.perf_counter), daemon=True)
            for p in pacers
        ]
        samples: list[dict[str, Any]] = []
        phases: dict[str, float] = {}
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        pause = threading.Event()
        faulted = healed = False
        while any(w.is_alive() for w in workers):
            pause.wait(0.5)
            now = time.perf_counter() - started
            if not faulted and now >= healthy_s:
                endpoint.set_fault("hang")
                faulted, phases["outage_start_s"] = True, now
            if faulted and not healed and now >= healthy_s + outage_s:
                endpoint.set_fault(None)
                healed, phases["outage_end_s"] = True, now
            samples.append(_sample(endpoint.host_port, started))
        stop.set()
        for worker in workers:
            worker.join(10.0)
        told = sum(p.told_statements for p in pacers) * EVENTS_PER_STATEMENT
        for connection in connections:
            connection.close()
        wait_until(only_registry_left, settings.shutdown_timeout_s + 5.0)
        final = actors.dump_state()["hosts"].get(endpoint.host_port, {}).get("accounting", {})
        actors.shutdown(settings.shutdown_timeout_s)
    return {
        "rate_per_s": rate_per_s,
        "threads": _THREADS,
        "settings": PROFILES["tuned"],
        "pending_bound_events": pending_bound(settings),
        "phases": phases,
        "told": told,
        "accounting": final,
        "samples": samples,
    }


def exit_with_hanging_endpoint(repeats: int) -> dict[str, Any]:
    """Seconds from the child's last line to its reaping, with every POST hanging."""
    timeout_s = TelemetrySettings().shutdown_timeout_s
    exits = []
    with EndpointProcess(flag=True) as endpoint:
        endpoint.set_fault("hang")
        for _ in range(repeats):
            child = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("_exit_child.py")), endpoint.url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(ROOT),
                text=True,
            )
            try:
                out, err = child.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                out, err = child.communicate(timeout=10)
                raise RuntimeError("exit child did not finish in 30 s") from None
            reaped = time.monotonic()
            if child.returncode != 0 or not out.strip():
                raise RuntimeError(f"exit child failed ({child.returncode}): {err[-2000:]}")
            exits.append(reaped - float(out.strip().splitlines()[-1]))
    return {"shutdown_timeout_s": timeout_s, "exit_s": exits}


def run(quick: bool, context: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    """The outage (60 s in full, 10 s in quick) and the exit-time repeats."""
    rate = (context or {}).get("sustained_per_s") or 20_000.0
    healthy_s, outage_s = (1.0, 5.0) if quick else (5.0, 60.0)
    return {
        "outage": outage(float(rate), healthy_s, outage_s),
        "exit": exit_with_hanging_endpoint(1 if quick else 3),
    }
