"""Child program for test_processes: child processes tell telemetry of their own and just exit.

The spec names the `start_method` (fork, spawn, forkserver) and the `api`:

- `process`: two `multiprocessing` `Process`es, each telling one session and returning;
- `pool`: a `concurrent.futures.ProcessPoolExecutor` of two workers, one session per task.

No child closes its connection or calls `actors.shutdown()`: each must deliver its own logs as
it exits. This process itself tells nothing; it reports the children's exit codes and what they
saw. With `hold_lock` set, a thread of this process holds pykka's registry lock (`pykka`) or the
facade's process lock (`facade`) while the children are forked. With `parent_db` set, this
process opens an instrumented sqlite3 connection first and closes it after the children ended:
its logs are its own, never ended again by a child. Nothing is printed.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sqlite3
import threading
import time
import warnings
from typing import Any

from child_common import (
    DRIVER,
    bearer,
    connect_ready,
    host_state,
    load_spec,
    tell_session,
    wait_until,
    write_report,
)

import actors

JOIN_TIMEOUT_S = 15.0  # for all children together
CHILDREN = 2


def one_session(spec: dict[str, Any], index: int) -> dict[str, Any]:
    """In a child: connect, tell one session of three logs, leave the connection open."""
    connection = connect_ready(spec)
    told = tell_session(connection, f"child-{index}")
    return {"pid": os.getpid(), "told": told}


def join_all(processes: list[Any]) -> None:
    """Join every process, all within `JOIN_TIMEOUT_S`."""
    deadline_s = time.monotonic() + JOIN_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline_s - time.monotonic()))


def run_processes(context: Any, spec: dict[str, Any]) -> list[int | None]:
    processes = [context.Process(target=one_session, args=(spec, i)) for i in range(CHILDREN)]
    for process in processes:
        process.start()
    join_all(processes)
    codes = [process.exitcode for process in processes]
    for process in processes:
        if process.exitcode is None:
            process.kill()
            process.join(5.0)
    return codes


def run_pool(context: Any, spec: dict[str, Any]) -> list[int | None]:
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=CHILDREN, mp_context=context)
    try:
        futures = [pool.submit(one_session, spec, i) for i in range(CHILDREN)]
        pids = {future.result(timeout=JOIN_TIMEOUT_S)["pid"] for future in futures}
    finally:
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
    join_all(processes)
    codes = [_exit_code(process) for process in processes]
    for process, code in zip(processes, codes, strict=True):
        if code is None:
            process.kill()
            process.join(5.0)
    return [len(pids), *codes]


def _exit_code(process: Any) -> int | str | None:
    """The worker's exit code; ``"reaped"`` when the pool's own thread collected it first (our
    poll then gets no status, though the process is gone); None only while it still runs."""
    code = process.exitcode
    if code is not None:
        return int(code)
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return "reaped"
    return None


def held_lock(which: str) -> Any:
    """The lock the spec wants held across the fork (None: none)."""
    if which == "pykka":
        import pykka

        return pykka.ActorRegistry._actor_refs_lock
    if which == "facade":
        from actors._runtime.process import state

        return state.lock
    return None


def main() -> None:
    spec = load_spec()
    # Forking while a thread holds a lock is what the hold_lock cases test; 3.12+ warns.
    warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
    context = multiprocessing.get_context(spec["start_method"])
    lock = held_lock(spec.get("hold_lock", ""))
    taken, release = threading.Event(), threading.Event()
    if lock is not None:

        def hold() -> None:
            with lock:
                taken.set()
                release.wait(JOIN_TIMEOUT_S * 2)

        holder = threading.Thread(target=hold, name="lock-holder", daemon=True)
        holder.start()
        taken.wait(5.0)
    db = parent_db(spec) if spec.get("parent_db") else None
    try:
        runner = run_pool if spec["api"] == "pool" else run_processes
        codes = runner(context, spec)
    finally:
        release.set()
    if db is not None:
        db.close()
    write_report(spec, codes=codes)


def parent_db(spec: dict[str, Any]) -> Any:
    """An instrumented sqlite3 connection of this process, open while the children run."""
    props = {f"telemetry.{key}": value for key, value in spec["properties"].items()}
    module = actors.instrument(
        sqlite3, host=spec["url"], driver=DRIVER, auth=bearer(spec["token"]), properties=props
    )
    db = module.connect(":memory:", check_same_thread=False)
    db.execute("SELECT 1").fetchall()
    host = next(iter(actors.dump_state(1.0)["hosts"]))
    wait_until(
        lambda: host_state(host).get("feature_flags", {}).get("enabled") is True, "the flag on"
    )
    return db


if __name__ == "__main__":
    main()
