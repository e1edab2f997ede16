"""What one driver thread pays per statement, and how much more beside the tree's own threads.

`python bench/thread_cost.py [--quick]`: one driver thread runs point selects (sqlite3, and
pyodbc over the SQLite ODBC driver when installed) four ways, interleaved round by round, and
the thread's own CPU (`time.thread_time`) and voluntary context switches are read around each
run:

- `raw`: the driver itself;
- `flag off`: ours, to an endpoint whose feature flag is off (the wrapper's own bookkeeping);
- `stand-in`: ours, flag on, every statement's summary built and told, but the host's lane
  takes nothing (`EventLane.offer` replaced for the run): no background thread runs;
- `live`: ours, shipped defaults, to the loopback endpoint (another process); the tree's
  threads fold, encode and send beside the driver thread, and the run is flushed at its end.

`stand-in` minus `flag off` is the telling itself; `live` minus `stand-in` is what the same
driver-thread code costs more while the tree's threads run beside it: the lane's hand-off and
wake-ups, GIL hand-overs and the caches shared with them. This is the measurement behind the
README's "why the rest is out of reach in-process".
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import auth_headers, quiet_gc
from _drivers import statement, usable
from _endpoint import EndpointProcess, flag_on_and_off

import actors
from actors._runtime.lane import EventLane
from messages.sysconfig import DriverInfo

WAYS = ("raw", "flag off", "stand-in", "live")


def _switches() -> int:
    """Voluntary context switches of the calling thread so far (Linux), or -1."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _run(conn: Any, sql: dict[str, str], start: int, count: int) -> tuple[float, float, int]:
    """`count` point selects: thread CPU (s), wall (s) and voluntary switches."""
    with quiet_gc():
        switches0, cpu0, wall0 = _switches(), time.thread_time(), time.perf_counter()
        for i in range(start, start + count):
            statement(conn, sql, "point", i)
        wall1, cpu1, switches1 = time.perf_counter(), time.thread_time(), _switches()
    return cpu1 - cpu0, wall1 - wall0, switches1 - switches0


def _row(driver: Any, on: EndpointProcess, off: EndpointProcess, count: int, rounds: int) -> dict:
    info = DriverInfo(name=f"thread-{driver.name}", version="1.0.0")
    connect = driver.module.connect
    modules = {
        "raw": driver.module,
        "flag off": actors.instrument(connect, host=off.url, driver=info, auth=auth_headers),
        "stand-in": actors.instrument(connect, host=on.url, driver=info, auth=auth_headers),
        "live": actors.instrument(connect, host=on.url, driver=info, auth=auth_headers),
    }
    conns = {way: driver.open(module, 0) for way, module in modules.items()}
    offer = EventLane.offer
    per: dict[str, list[tuple[float, float, int]]] = {way: [] for way in WAYS}
    try:
        for r in range(rounds + 1):  # the first round warms up
            order = WAYS[r % len(WAYS) :] + WAYS[: r % len(WAYS)]
            for way in order:
                if way == "stand-in":
                    EventLane.offer = lambda self, item: True  # type: ignore[method-assign]
                try:
                    got = _run(conns[way], driver.sql, r * count, count)
                finally:
                    EventLane.offer = offer  # type: ignore[method-assign]
                if way == "live" and not actors.flush(timeout_s=30.0):
                    raise RuntimeError("flush did not finish in time")
                if r:
                    per[way].append(got)
    finally:
        EventLane.offer = offer  # type: ignore[method-assign]
        for conn in conns.values():
            conn.close()
    out: dict[str, Any] = {}
    for way, runs in per.items():
        out[way] = {
            "cpu_us": statistics.median(c for c, _, _ in runs) / count * 1e6,
            "wall_us": statistics.median(w for _, w, _ in runs) / count * 1e6,
            "switches": statistics.median(s for _, _, s in runs) / count,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds, count = (5, 4000) if args.quick else (9, 10000)
    started, load = time.monotonic(), os.getloadavg()
    with (
        flag_on_and_off("thread") as (on, off),
        tempfile.TemporaryDirectory(prefix="bench-thread-") as tmp,
    ):
        print(
            f"{'row':22} "
            + "  ".join(f"{w + ' CPU/wall µs (switches)':>34}" for w in WAYS)
            + "   telling  beside the tree"
        )
        for name, driver in usable(Path(tmp), ("sqlite3", "pyodbc")):
            f = _row(driver, on, off, count, rounds)
            cells = [
                f"{f[w]['cpu_us']:9.2f} / {f[w]['wall_us']:7.2f} ({f[w]['switches']:5.3f})"
                for w in WAYS
            ]
            telling = f["stand-in"]["cpu_us"] - f["flag off"]["cpu_us"]
            beside = f["live"]["cpu_us"] - f["stand-in"]["cpu_us"]
            print(f"{name + ': point select':22} " + "  ".join(f"{c:>34}" for c in cells)
                  + f"   {telling:+7.2f}  {beside:+7.2f}")  # fmt: skip
    print(
        f"\nthe driver thread's own CPU and wall per statement, medians of {rounds} rounds of "
        f"{count} statements, one thread; 'telling' = stand-in − flag off, 'beside the tree' = "
        f"live − stand-in; {os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in load)} "
        f"at the start; {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
