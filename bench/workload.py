"""Item 4: overhead on a real threaded driver workload: sqlite3 through `actors.dbapi`.

Four driver threads, each with its own connection to an in-memory database, run the same fixed
mix of statements (selects fetched with fetchmany(64), updates, inserts). Three ways: not
instrumented (plain sqlite3), instrumented with telemetry disabled in configuration, and
instrumented with telemetry enabled (shipped defaults) exporting to the loopback endpoint. A
second variant sleeps 1 ms before every statement, as a network round trip would.

Wall time is the workload's; process CPU covers the workload plus, when enabled, the flush and
export of what it told. Runs of the three ways are interleaved and ratios are taken per round.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from _common import auth_headers, only_registry_left, quiet_gc, wait_flags, wait_until
from _endpoint import EndpointProcess

import actors
from actors.dbapi import instrument
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="bench-sqlite-driver", version="1.0.0")
THREADS = 4


def _thread_work(module: Any, statements: int, pause_s: float, errors: list[BaseException]) -> None:
    try:
        conn = module.connect(":memory:", check_same_thread=False)
        try:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
            conn.executemany(
                "INSERT INTO t (name, score) VALUES (?, ?)",
                [(f"user-{i}", (i * 37 % 101) / 101) for i in range(200)],
            )
            for i in range(statements):
                if pause_s:
                    time.sleep(pause_s)
                kind = i % 10
                if kind < 6:
                    cursor = conn.execute("SELECT id, name, score FROM t WHERE score > ?", (0.3,))
                    while cursor.fetchmany(64):
                        pass
                elif kind < 9:
                    conn.execute("UPDATE t SET score = score / 2 WHERE id % 7 = ?", (i % 7,))
                else:
                    conn.execute("INSERT INTO t (name, score) VALUES (?, ?)", (f"n{i}", 0.5))
            conn.commit()
        finally:
            conn.close()
    except BaseException as exc:  # reported by the caller
        errors.append(exc)


def _one(module: Any, statements: int, pause_s: float, exported: Any) -> dict[str, float]:
    errors: list[BaseException] = []
    workers = [
        threading.Thread(target=_thread_work, args=(module, statements, pause_s, errors))
        for _ in range(THREADS)
    ]
    with quiet_gc():
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120.0)
        wall1 = time.perf_counter()
        if exported is not None:
            exported()
        cpu1 = time.process_time()
    if errors:
        raise errors[0]
    return {"wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0}


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Interleaved rounds of the three ways, for the raw and the 1 ms variant."""
    repeats = 3 if quick else 5
    variants = {"raw": (600 if quick else 1500, 0.0), "1ms": (150 if quick else 300, 0.001)}
    out: dict[str, Any] = {"threads": THREADS, "variants": {}}
    with EndpointProcess(flag=True) as endpoint:
        ways = {
            "none": sqlite3,
            "disabled": instrument(
                sqlite3,
                host=endpoint.url,
                driver=DRIVER,
                auth=auth_headers,
                properties={"telemetry.enabled": "false"},
            ),
            "enabled": instrument(sqlite3, host=endpoint.url, driver=DRIVER, auth=auth_headers),
        }
        keeper = actors.connect(endpoint.url, driver=DRIVER, auth=auth_headers)
        if not wait_flags({endpoint.host_port: True}, 10.0):
            raise RuntimeError("feature flag not fetched within 10 s")

        def settle() -> None:
            actors.flush(timeout_s=10.0)

        for variant, (statements, pause_s) in variants.items():
            for module in ways.values():  # warm-up
                _one(module, max(20, statements // 10), pause_s, None)
            rounds = []
            for _ in range(repeats):
                result = {
                    name: _one(module, statements, pause_s, settle if name == "enabled" else None)
                    for name, module in ways.items()
                }
                for name in ("disabled", "enabled"):
                    result[name]["wall_ratio"] = result[name]["wall_s"] / result["none"]["wall_s"]
                    result[name]["cpu_ratio"] = result[name]["cpu_s"] / result["none"]["cpu_s"]
                rounds.append(result)
            out["variants"][variant] = {
                "statements_per_thread": statements,
                "pause_s": pause_s,
                "rounds": rounds,
            }
        host = actors.dump_state()["hosts"].get(endpoint.host_port, {})
        out["accounting"] = host.get("accounting", {})
        keeper.close()
        wait_until(only_registry_left, 10.0)
        actors.shutdown(2.0)
    return out
