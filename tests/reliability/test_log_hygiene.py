"""Telemetry never talks above DEBUG, never prints, and leaves the host's global state alone.

`scripts/log_child.py` runs one connection per fault (200, 500, 429 with Retry-After, a hang
past the read timeout, connection refused for the flag and for exports, a malformed answer for
exports and for the flag, a reset, a 401, an auth provider that raises, connections opened and
closed in a row against a slow endpoint) in a fresh interpreter, once with the host's root
logger at DEBUG and once with no logging configuration at all. Both runs share the same
endpoints and run side by side.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from _support import closed_port

from actors.tools.local_endpoint import Fault, LocalEndpoint

if TYPE_CHECKING:
    from conftest import Child, ChildRun

TOKEN = "hygiene-token"
FAST = {
    "flush_interval_ms": 50,
    "retry_delay_ms": 10,
    "retry_max_delay_ms": 20,
    "max_retries": 1,
    "http.connect_timeout_ms": 300,
    "http.read_timeout_ms": 300,
    "shutdown_timeout_ms": 2000,
}
# name: (endpoint fault, or "refused" for a closed port; force_enable; auth)
MATRIX: dict[str, tuple[str | None, bool, str | None]] = {
    "ok": (None, False, TOKEN),
    "status_500": ("status:500", True, TOKEN),
    "retry_after_429": ("retry_after:1", True, TOKEN),
    "hang": ("hang", True, TOKEN),
    "refused_flag": ("refused", False, TOKEN),
    "refused_export": ("refused", True, TOKEN),
    "malformed": ("malformed", True, TOKEN),
    "malformed_flag": ("malformed+flags", False, TOKEN),
    "reset": ("drop", True, TOKEN),
    "unauthorized": (None, True, "wrong-token"),
    "broken_auth": (None, False, "broken"),
    "churn": ("slow:0.8", True, TOKEN),
}
# Connections opened and closed in a row before the main one: their trees drain side by side,
# so more requests to one host are in flight at once than the pool keeps connections for.
CHURN = {"churn": 6}
SLOW_READS = {"churn": {"http.read_timeout_ms": 2000}}  # the slow answers must not time out
OURS = ("actors", "messages", "pykka")
# urllib3 logs "Connection pool is full, discarding connection" at WARNING when a returned socket
# finds its host's pool full. The library's shared pool keeps 32 connections per host (see
# `new_pool_manager`) so that trees of one host draining side by side never cause it; the churn
# case above makes them, and a test below checks that the message never appears.
POOL_FULL = "Connection pool is full"


@pytest.fixture(scope="module")
def targets() -> Iterator[list[dict[str, Any]]]:
    """One endpoint (or closed port) per fault in `MATRIX`, shared by both runs."""
    endpoints: list[LocalEndpoint] = []
    found = []
    try:
        for name, (fault, force, auth) in MATRIX.items():
            if fault == "refused":
                url = f"http://127.0.0.1:{closed_port()}"
            else:
                endpoint = LocalEndpoint(
                    token=TOKEN, stop_timeout_s=2.0, fault=Fault.parse(fault) if fault else None
                )
                endpoints.append(endpoint)
                url = endpoint.start().url
            properties = {**FAST, "force_enable": force, **SLOW_READS.get(name, {})}
            found.append(
                {
                    "name": name,
                    "url": url,
                    "auth": auth,
                    "properties": properties,
                    "churn": CHURN.get(name, 0),
                }
            )
        yield found
    finally:
        for endpoint in endpoints:
            endpoint.close()


@pytest.fixture(scope="module")
def runs(
    targets: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
    child_program: Callable[..., Child],
) -> dict[str, ChildRun]:
    """The fault matrix run at DEBUG and with no logging configuration, side by side."""
    folder = tmp_path_factory.mktemp("hygiene")
    children: dict[str, Child] = {
        mode: child_program(
            "log_child.py", {"mode": mode, "targets": targets}, folder / f"{mode}.json"
        )
        for mode in ("debug", "default")
    }
    try:
        return {mode: child.finish() for mode, child in children.items()}
    finally:
        for child in children.values():
            if child.proc.returncode is None:
                child.kill()


def test_fault_matrix_takes_every_fault_path_it_names(runs: dict[str, ChildRun]) -> None:
    """Not vacuous: each connection met its fault (per its exporter, flag and accounts)."""
    for mode, run in runs.items():
        assert run.returncode == 0, (mode, run.stderr[-3000:])
        assert run.report["clean"] is True, mode
        outcomes = run.report["outcomes"]
        seen = {
            name: (
                sorted(o["responses"]),
                {k: v for k, v in o["dropped"].items() if k != "invalid_event"},
                o["exported"],
                o["flag"],
            )
            for name, o in outcomes.items()
        }
        failed = {"export_failed": 5}
        assert seen == {
            "ok": (["200"], {}, 5, "server"),
            "status_500": (["500"], failed, 0, "force_enable"),
            "retry_after_429": (["429"], failed, 0, "force_enable"),
            "hang": (["ReadTimeoutError"], failed, 0, "force_enable"),
            "refused_flag": ([], {"flag_off": 5}, 0, "fetch_failed"),
            "refused_export": (["NewConnectionError"], failed, 0, "force_enable"),
            "malformed": (["200"], failed, 0, "force_enable"),
            "malformed_flag": ([], {"flag_off": 5}, 0, "fetch_failed"),
            "reset": (["ProtocolError"], failed, 0, "force_enable"),
            "unauthorized": (["401"], {"unauthorized": 5}, 0, "force_enable"),
            "broken_auth": (["200"], {}, 5, "server"),
            "churn": (["200"], {}, 5 * (1 + CHURN["churn"]), "force_enable"),
        }, mode
        assert all(o["dropped"]["invalid_event"] == 1 for o in outcomes.values()), mode
        assert all(o["handler_errors"] == 0 for o in outcomes.values()), mode


def test_at_debug_every_record_from_any_logger_is_debug(runs: dict[str, ChildRun]) -> None:
    run = runs["debug"]
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.report["records"]
    by_root = Counter(r["logger"].split(".")[0] for r in records)
    # Not vacuous: the package and pykka did log (at DEBUG) through the host's handlers.
    assert by_root["actors"] >= 3 and by_root["messages"] >= 1 and by_root["pykka"] >= 10, by_root
    louder = [r for r in records if r["levelno"] > logging.DEBUG]
    assert louder == []
    assert all(r["level"] == "DEBUG" for r in records if r["logger"].startswith(OURS))


def test_at_debug_nothing_but_log_records_reaches_the_hosts_streams(
    runs: dict[str, ChildRun],
) -> None:
    run = runs["debug"]
    assert run.stdout == ""
    assert "Exception in thread" not in run.stderr
    assert "Exception ignored" not in run.stderr
    record_lines = [line for line in run.stderr.splitlines() if not line.startswith((" ", "\t"))]
    levels = Counter(line.split(":", 1)[0] for line in record_lines if ":" in line)
    assert not {"INFO", "WARNING", "ERROR", "CRITICAL"} & set(levels), levels


def test_trees_of_one_host_draining_side_by_side_make_urllib3_log_no_warning(
    runs: dict[str, ChildRun],
) -> None:
    assert runs["debug"].report["outcomes"]["churn"]["exported"] == 35  # the churn did run
    pool_full = [r for r in runs["debug"].report["records"] if POOL_FULL in r["message"]]
    assert pool_full == []


def test_with_no_logging_configuration_nothing_at_all_reaches_stdout_or_stderr(
    runs: dict[str, ChildRun],
) -> None:
    run = runs["default"]
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert run.report["records"] == []


@pytest.mark.parametrize("mode", ["default", "debug"])
@pytest.mark.parametrize("moment", ["after_import", "after_workload", "after_shutdown"])
def test_library_installs_no_hooks_and_no_signal_handlers(
    runs: dict[str, ChildRun], mode: str, moment: str
) -> None:
    snapshots = runs[mode].report["snapshots"]
    before, after = snapshots["before_import"], snapshots[moment]
    assert after["signals"] == before["signals"]
    changed = {k for k in before["hooks"] if after["hooks"][k] != before["hooks"][k]}
    # urllib3 (a dependency, not this package) adds filters for its own warnings at import.
    assert changed <= {"warnings.filters"}, changed
    assert after["hooks"]["warnings.filters"].startswith(
        before["hooks"]["warnings.filters"][:-1]
    ), "a warnings filter was removed or reordered"
    added = after["hooks"]["warnings.filters"][len(before["hooks"]["warnings.filters"]) - 1 :]
    assert added.count("<class '") == added.count("<class 'urllib3."), added
    # At most our one bounded exit hook, plus weakref.finalize's (urllib3's pools use it).
    assert after["atexit_callbacks"] - before["atexit_callbacks"] <= 2


@pytest.mark.parametrize("mode", ["default", "debug"])
@pytest.mark.parametrize("moment", ["after_import", "after_workload", "after_shutdown"])
def test_library_adds_only_null_handlers_and_configures_no_logger(
    runs: dict[str, ChildRun], mode: str, moment: str
) -> None:
    snapshots = runs[mode].report["snapshots"]
    before, after = snapshots["before_import"]["loggers"], snapshots[moment]["loggers"]
    assert {name: after[name] for name in before} == before  # root and the host's untouched
    new = {name: state for name, state in after.items() if name not in before}
    assert {"actors", "messages", "pykka"} <= set(new)
    unconfigured = {"level": 0, "propagate": True, "disabled": False}
    assert {
        name: state
        for name, state in new.items()
        if {k: state[k] for k in unconfigured} != unconfigured
        or set(state["handlers"]) - {"NullHandler"}
    } == {}
