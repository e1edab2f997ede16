"""The process always exits within the shutdown timeout, quietly, having sent what it could.

Each case runs `scripts/exit_child.py` in a fresh interpreter against a `LocalEndpoint` started
here. The child never calls `actors.shutdown()`: its exit goes through the library's own exit
hook. The exit time is measured from the child's "workload done" moment (reported in its JSON
file, on the shared monotonic clock) until the parent reaped it, so it covers the exit hook,
interpreter finalisation and process teardown. A healthy endpoint must hold every log the child
told; stdout and stderr must stay empty (for a KeyboardInterrupt, only the host's own traceback).
"""

from __future__ import annotations

import pathlib
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from _support import stored_by_session

from actors.tools.local_endpoint import LocalEndpoint

if TYPE_CHECKING:
    from conftest import Child, ChildRun

SHUTDOWN_TIMEOUT_MS = 1000
EXIT_MARGIN_S = 0.5
EXIT_BOUND_S = SHUTDOWN_TIMEOUT_MS / 1000 + EXIT_MARGIN_S
# Nothing is exported before exit: the exit hook's drain has to send it all.
QUIET = {"shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS, "flush_interval_ms": 60_000}
LOGS_PER_SESSION = {"connection": 1, "statement": 1, "close": 1}

RunExit = Callable[..., "ChildRun"]


@pytest.fixture
def run_exit(run_child: Callable[..., ChildRun], token: str) -> RunExit:
    """`run_exit(case, url, **properties)`: run one exit case of `exit_child.py`."""

    def run(case: str, url: str, **properties: Any) -> ChildRun:
        return run_child(
            "exit_child.py", case=case, url=url, token=token, properties={**QUIET, **properties}
        )

    return run


def assert_bounded(run: ChildRun, exit_s: float, case: str) -> None:
    """The exit took at most the shutdown timeout plus the margin (printed for the record)."""
    print(f"{case}: exit took {exit_s:.3f} s (bound {EXIT_BOUND_S} s)")
    assert exit_s <= EXIT_BOUND_S, f"{case}: exit took {exit_s:.3f} s; stderr:\n{run.stderr}"


def assert_quiet_bounded_exit(run: ChildRun, case: str, returncode: int = 0) -> None:
    """Exit code as expected, nothing printed, exit within the shutdown timeout + margin."""
    assert (run.returncode, run.stdout, run.stderr) == (returncode, "", ""), run.stderr
    assert run.report, "the child wrote no report"
    assert_bounded(run, run.exit_s(), case)


def assert_stored_once(endpoint: LocalEndpoint, *sessions: str) -> None:
    """The endpoint holds exactly the three logs of each session, each accepted once."""
    assert stored_by_session(endpoint) == {s: Counter(LOGS_PER_SESSION) for s in sessions}
    assert endpoint.stats()["logs_accepted"] == endpoint.store.count() == 3 * len(sessions)


def assert_only_keyboard_interrupt_traceback(stderr: str) -> None:
    """stderr is the interpreter's one KeyboardInterrupt traceback, through the child's code."""
    lines = stderr.splitlines()
    assert lines and lines[0] == "Traceback (most recent call last):", stderr
    assert lines[-1] == "KeyboardInterrupt", stderr
    assert stderr.count("Traceback") == 1, stderr
    files = re.findall(r'^  File "([^"]+)"', stderr, flags=re.MULTILINE)
    assert files and all(
        pathlib.Path(f).name in ("exit_child.py", "threading.py") for f in files
    ), stderr
    others = [line for line in lines if not line.startswith("  ")]
    assert all("actors" not in line and "pykka" not in line for line in others), stderr
    assert "Exception in thread" not in stderr and "Exception ignored" not in stderr, stderr


def test_exit_after_closing_every_connection_sends_all_logs_within_the_shutdown_timeout(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint()

    run = run_exit("close_then_return", endpoint.url)

    assert_quiet_bounded_exit(run, "close_then_return")
    assert_stored_once(endpoint, "closed-session")


def test_exit_with_connections_left_open_drains_them_through_the_exit_hook(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint()

    run = run_exit("return_without_close", endpoint.url)

    assert_quiet_bounded_exit(run, "return_without_close")
    assert_stored_once(endpoint, "open-session")


@pytest.mark.slow
def test_exit_while_a_post_hangs_ends_at_the_shutdown_timeout_not_the_read_timeout(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint(fault="hang")

    run = run_exit(
        "hanging_endpoint", endpoint.url, flush_interval_ms=50, **{"http.read_timeout_ms": 30_000}
    )

    assert_quiet_bounded_exit(run, "hanging_endpoint")
    assert endpoint.store.count() == 0  # the endpoint never answered, so it took nothing


def test_exit_while_the_breaker_is_open_is_prompt_and_sends_nothing_more(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint(fault="status:500")

    run = run_exit(
        "breaker_open",
        endpoint.url,
        flush_interval_ms=50,
        max_retries=0,
        **{"circuit_breaker.threshold": 1, "circuit_breaker.open_s": 60},
    )

    assert_quiet_bounded_exit(run, "breaker_open")
    assert endpoint.stats()["requests"]["/telemetry-ext"] == {500: 1}  # the one that opened it
    assert endpoint.store.count() == 0


def test_exit_after_a_worker_thread_told_events_and_main_returned_first_sends_them(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint()

    run = run_exit("worker_thread", endpoint.url)

    assert_quiet_bounded_exit(run, "worker_thread")
    if run.report["threads_refused"]:  # 3.12.1 (gh-113964): nothing can be sent, all is counted
        assert (run.report["accepted"], run.report["counted"]) == (0, 5)
        assert endpoint.store.count() == 0
    else:
        assert_stored_once(endpoint, "worker-session")


def test_sys_exit_inside_a_connection_with_block_keeps_its_code_and_sends_all_logs(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint()

    run = run_exit("sys_exit_in_with", endpoint.url)

    assert_quiet_bounded_exit(run, "sys_exit_in_with", returncode=3)
    assert_stored_once(endpoint, "with-session")


def test_keyboard_interrupt_raised_in_main_exits_with_only_the_hosts_traceback(
    make_endpoint: Callable[..., LocalEndpoint], run_exit: RunExit
) -> None:
    endpoint = make_endpoint()

    run = run_exit("raise_keyboard_interrupt", endpoint.url)

    assert run.returncode == -signal.SIGINT, run.stderr
    assert run.stdout == ""
    assert_only_keyboard_interrupt_traceback(run.stderr)
    assert_bounded(run, run.exit_s(), "raise_keyboard_interrupt")
    assert_stored_once(endpoint, "interrupted-session")


def test_sigint_while_the_main_thread_waits_exits_with_only_the_hosts_traceback(
    make_endpoint: Callable[..., LocalEndpoint],
    start_child: Callable[..., Child],
    wait_for: Callable[..., Any],
    token: str,
    tmp_path: pathlib.Path,
) -> None:
    endpoint = make_endpoint()
    ready = tmp_path / "ready"
    child = start_child(
        "exit_child.py",
        case="sigint",
        url=endpoint.url,
        token=token,
        properties=QUIET,
        ready=str(ready),
    )
    wait_for(ready.exists, timeout_s=20.0, what="the child to be ready")  # its report is written
    child.proc.send_signal(signal.SIGINT)
    interrupted_s = time.monotonic()

    run = child.finish()

    assert run.returncode == -signal.SIGINT, run.stderr
    assert run.stdout == ""
    assert_only_keyboard_interrupt_traceback(run.stderr)
    assert_bounded(run, run.exit_s(since_s=interrupted_s), "sigint")
    assert_stored_once(endpoint, "sigint-session")
