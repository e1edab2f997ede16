"""Where an instrumented statement's cost goes: the wrapper, the fold, the encode and the HTTP.

`python bench/cost_split.py [--quick]`: four driver threads run point selects on sqlite3 and
on pyodbc (SQLite ODBC driver) five ways, interleaved round by round, each flushed inside the
timing as in the headline (`real_path`):

- `raw`: the driver itself;
- `flag off`: ours, to an endpoint whose feature flag is off: the wrapper runs its own
  bookkeeping (ids, statement type, clocks, row counts) but sees `Connection.enabled` False and
  builds and tells no event; nothing is folded, encoded or sent. The wrapper's own cost;
- `file sink`: ours, shipped defaults but `telemetry.sink=file` (a file in a temporary
  directory): everything up to and including the JSON encoding, no HTTP;
- `http`: ours, shipped defaults, to the loopback endpoint (another process);
- `off`: ours with ``telemetry.enabled=false`` (the driver's own `connect`).

The differences between neighbouring ways split the added cost by stage; `driver/bg` splits
each way's added CPU into the driver threads' own and the rest of the process. This is the
measurement behind the note's "what in-process cannot reach": see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import auth_headers
from _crew import Crew
from _drivers import THREADS, statement, usable
from _endpoint import EndpointProcess, flag_on_and_off
from real_path import _timed

import actors
from messages.sysconfig import DriverInfo

WAYS = ("raw", "flag off", "file sink", "http", "off")


def _modules(driver: Any, on: EndpointProcess, off: EndpointProcess, tmp: Path) -> dict[str, Any]:
    info = DriverInfo(name=f"split-{driver.name}", version="1.0.0")
    connect = driver.module.connect
    file_sink = {"telemetry.sink": "file", "telemetry.file_path": str(tmp / "sink.jsonl")}
    return {
        "raw": driver.module,
        "flag off": actors.instrument(connect, host=off.url, driver=info, auth=auth_headers),
        "file sink": actors.instrument(
            connect, host="file-sink.invalid", driver=info, properties=file_sink
        ),
        "http": actors.instrument(connect, host=on.url, driver=info, auth=auth_headers),
        "off": actors.instrument(
            connect, host=on.url, driver=info, properties={"telemetry.enabled": "false"}
        ),
    }


def _row(driver: Any, modules: dict[str, Any], per_thread: int, repeats: int) -> dict[str, Any]:
    def opener(module: Any) -> Any:
        return lambda index: {"conn": driver.open(module, index), "counter": 0}

    crews = {
        way: Crew(opener(modules[way]), lambda state: state["conn"].close(), THREADS)
        for way in WAYS
    }

    def job(state: dict[str, Any]) -> None:
        base = state["counter"]
        state["counter"] = base + per_thread
        for i in range(base, base + per_thread):
            statement(state["conn"], driver.sql, "point", i)
        state["conn"].commit()

    def flush() -> object:
        return actors.flush(timeout_s=30.0)

    n = per_thread * THREADS
    per: dict[str, list[float]] = {}
    try:
        flush()
        for way in WAYS:  # warm-up
            _timed(crews[way], job, flush)
        for r in range(repeats):
            order = WAYS[r % len(WAYS) :] + WAYS[: r % len(WAYS)]
            got = {way: _timed(crews[way], job, flush) for way in order}
            raw = got["raw"]
            for way in WAYS[1:]:
                per.setdefault(f"{way}|wall", []).append(
                    (got[way]["wall_s"] - raw["wall_s"]) / n * 1e6
                )
                per.setdefault(f"{way}|cpu", []).append(
                    (got[way]["cpu_s"] - raw["cpu_s"]) / n * 1e6
                )
                if got[way]["driver_cpu_s"] is not None and raw["driver_cpu_s"] is not None:
                    per.setdefault(f"{way}|driver", []).append(
                        (got[way]["driver_cpu_s"] - raw["driver_cpu_s"]) / n * 1e6
                    )
            per.setdefault("raw|wall", []).append(raw["wall_s"] / n * 1e6)
    finally:
        for crew in crews.values():
            crew.close()
    return {key: statistics.median(values) for key, values in per.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    repeats, per_thread = (5, 150) if args.quick else (9, 250)
    started = time.monotonic()
    load = os.getloadavg()
    with (
        flag_on_and_off("split") as (on, off),
        tempfile.TemporaryDirectory(prefix="bench-split-") as tmp,
    ):
        print(
            f"{'row':22} {'raw µs':>8}  "
            + "  ".join(f"{w + ' +wall/+CPU (driver)':>32}" for w in WAYS[1:])
        )
        for name, driver in usable(Path(tmp), ("sqlite3", "pyodbc")):
            f = _row(driver, _modules(driver, on, off, Path(tmp)), per_thread, repeats)
            nan = float("nan")
            cells = [
                f"{f[w + '|wall']:8.1f} / {f[w + '|cpu']:6.1f} ({f.get(w + '|driver', nan):5.1f})"
                for w in WAYS[1:]
            ]
            print(
                f"{name + ': point select':22} {f['raw|wall']:8.1f}  "
                + "  ".join(f"{c:>32}" for c in cells)
            )
        actors.shutdown(2.0)
    print(
        f"\nµs per statement added to raw, medians of {repeats} rounds, {THREADS} threads, "
        f"{per_thread * THREADS} statements per run; {os.cpu_count()} CPUs, load "
        f"{' '.join(f'{x:.2f}' for x in load)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; "
        f"{time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
