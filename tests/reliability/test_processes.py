"""Child processes deliver their own telemetry as they exit, whatever starts them.

Each case runs `scripts/process_child.py` in a fresh interpreter: it starts two children by
one start method (fork, spawn, forkserver) through `multiprocessing.Process` or a
`concurrent.futures.ProcessPoolExecutor`. Each child tells one session (three logs) and exits
without closing or shutting down; the loopback endpoint must hold all six logs, once each. A
child forked while another thread holds pykka's registry lock or the facade's lock must not
deadlock: it exits in time with its logs delivered.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from _support import stored_by_session

from actors.tools.local_endpoint import LocalEndpoint

if TYPE_CHECKING:
    from conftest import ChildRun

PROPERTIES = {"shutdown_timeout_ms": 2000, "flush_interval_ms": 60_000}
SESSION = Counter({"connection": 1, "statement": 1, "close": 1})
CHILDREN = 2
METHODS = [
    method
    for method in ("fork", "spawn", "forkserver")
    if method in multiprocessing.get_all_start_methods()
]


@pytest.fixture
def run_processes(
    run_child: Callable[..., ChildRun], make_endpoint: Callable[..., LocalEndpoint], token: str
) -> Callable[..., tuple[ChildRun, LocalEndpoint]]:
    def run(
        start_method: str, api: str, hold_lock: str = "", parent_db: bool = False
    ) -> tuple[ChildRun, LocalEndpoint]:
        endpoint = make_endpoint()
        result = run_child(
            "process_child.py",
            timeout_s=60.0,
            start_method=start_method,
            api=api,
            hold_lock=hold_lock,
            parent_db=parent_db,
            url=endpoint.url,
            token=token,
            properties=PROPERTIES,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result.stderr
        return result, endpoint

    return run


def assert_every_child_session_stored_once(endpoint: LocalEndpoint, parent_logs: int = 0) -> None:
    found = {
        sid: kinds for sid, kinds in stored_by_session(endpoint).items() if sid.startswith("child-")
    }
    assert found == {f"child-{i}": SESSION for i in range(CHILDREN)}
    assert endpoint.stats()["logs_accepted"] == endpoint.store.count() == 3 * CHILDREN + parent_logs


@pytest.mark.parametrize("start_method", METHODS)
def test_multiprocessing_children_deliver_their_logs_as_they_exit(
    run_processes: Callable[..., tuple[ChildRun, LocalEndpoint]], start_method: str
) -> None:
    result, endpoint = run_processes(start_method, "process")

    assert result.report["codes"] == [0] * CHILDREN
    assert_every_child_session_stored_once(endpoint)


@pytest.mark.parametrize("start_method", METHODS)
def test_process_pool_workers_deliver_their_logs_as_the_pool_shuts_down(
    run_processes: Callable[..., tuple[ChildRun, LocalEndpoint]], start_method: str
) -> None:
    result, endpoint = run_processes(start_method, "pool")

    workers, *codes = result.report["codes"]
    assert 1 <= workers <= CHILDREN
    # every worker exited; a worker the pool's own thread reaped first reads "reaped" (or 255
    # with forkserver), but none may still run
    assert codes and None not in codes, codes
    assert_every_child_session_stored_once(endpoint)


@pytest.mark.parametrize("lock", ["pykka", "facade"])
def test_a_child_forked_while_a_thread_holds_a_registry_lock_never_deadlocks(
    run_processes: Callable[..., tuple[ChildRun, LocalEndpoint]], lock: str
) -> None:
    result, endpoint = run_processes("fork", "process", hold_lock=lock)

    assert result.report["codes"] == [0] * CHILDREN
    assert_every_child_session_stored_once(endpoint)


def test_fork_children_never_end_the_parents_open_instrumented_sessions(
    run_processes: Callable[..., tuple[ChildRun, LocalEndpoint]],
) -> None:
    result, endpoint = run_processes("fork", "process", parent_db=True)

    assert result.report["codes"] == [0] * CHILDREN
    assert_every_child_session_stored_once(endpoint, parent_logs=3)
    (parent,) = [
        kinds for sid, kinds in stored_by_session(endpoint).items() if not sid.startswith("child-")
    ]
    assert parent == SESSION  # its close log once, told by the parent itself
