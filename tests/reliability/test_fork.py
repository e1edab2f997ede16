"""A forked child gets a telemetry tree of its own; the parent's tree carries on untouched.

Each case runs `scripts/fork_child.py` in a fresh interpreter (so no test process ever forks
with live threads). That process opens a connection, tells half a session, forks, lets the child
tell a session of its own, then finishes its session and exits through the exit hook. The
endpoint's store tells the story: both sessions, each log exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from _support import stored_by_session

from actors.tools.local_endpoint import LocalEndpoint

if TYPE_CHECKING:
    from conftest import ChildRun

RunFork = Callable[[str], tuple["ChildRun", dict[str, Any]]]

PROPERTIES = {"shutdown_timeout_ms": 1000, "flush_interval_ms": 60_000}
PARENT_LOGS = Counter({"connection": 1, "statement": 2, "close": 1})  # 8 events
CHILD_LOGS = Counter({"connection": 1, "statement": 1, "close": 1})  # 5 events
TREE_THREAD_PREFIXES = (
    "RegistryActor-",
    "HostSupervisor-",
    "FeatureFlagActor-",
    "AggregatorActor-",
    "ExporterActor-",
    "telemetry-timer-",
)


@pytest.fixture
def endpoint(make_endpoint: Callable[..., LocalEndpoint]) -> LocalEndpoint:
    """One healthy endpoint, shared by the parent and the forked child."""
    return make_endpoint()


@pytest.fixture
def run_fork(run_child: Callable[..., ChildRun], endpoint: LocalEndpoint, token: str) -> RunFork:
    """`run_fork(case)`: run one case; return the run and the forked child's own report."""

    def run(case: str) -> tuple[ChildRun, dict[str, Any]]:
        result = run_child(
            "fork_child.py", case=case, url=endpoint.url, token=token, properties=PROPERTIES
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result.stderr
        assert result.report, "the process wrote no report"
        child = result.report_path.with_name(result.report_path.name + ".child.json")
        return result, json.loads(child.read_text())

    return run


def assert_both_sessions_stored_once(endpoint: LocalEndpoint) -> None:
    """Parent and child sessions, each log accepted exactly once (no re-sent inherited logs)."""
    assert stored_by_session(endpoint) == {
        "parent-session": PARENT_LOGS,
        "child-session": CHILD_LOGS,
    }
    expected = sum(PARENT_LOGS.values()) + sum(CHILD_LOGS.values())
    assert endpoint.stats()["logs_accepted"] == endpoint.store.count() == expected


def assert_parent_tree_untouched(parent: dict[str, Any]) -> None:
    """The parent's threads lived through the fork and its accounts cover its own events only."""
    assert parent["child_exitcode"] == 0
    assert parent["threads_before"] == parent["threads_after"]
    assert parent["alive_after"] is True
    assert len(parent["threads_before"]) == len(TREE_THREAD_PREFIXES)
    account = parent["account"]
    assert account["told"] == parent["told"] == 8
    assert account["balanced"] is True
    assert account["dropped"] == {}


def assert_fresh_child_tree(child: dict[str, Any], parent: dict[str, Any]) -> None:
    """The child ran its own registry and one host tree of its own, with its events only."""
    assert "error" not in child, child.get("error")
    assert child["pid"] != parent["pid"]
    assert child["registry_connects"] == 1
    assert sorted(name.split("-", 1)[0] for name in child["threads"]) == sorted(
        prefix.split("-", 1)[0] for prefix in TREE_THREAD_PREFIXES
    )
    host = child["host"]
    assert (host["live"], host["refcount"]) == (True, 1)
    assert host["accounting"]["told"] == child["told"] == 5
    assert host["accounting"]["balanced"] is True


def test_events_told_in_an_os_fork_child_are_exported_by_the_child_after_its_shutdown(
    run_fork: RunFork, endpoint: LocalEndpoint
) -> None:
    result, child = run_fork("os_fork")

    assert_fresh_child_tree(child, result.report)
    assert_parent_tree_untouched(result.report)
    assert_both_sessions_stored_once(endpoint)


def test_a_multiprocessing_fork_child_exports_its_events_without_calling_shutdown(
    run_fork: RunFork, endpoint: LocalEndpoint
) -> None:
    result, child = run_fork("mp_fork")

    assert_fresh_child_tree(child, result.report)
    assert_parent_tree_untouched(result.report)
    assert_both_sessions_stored_once(endpoint)


def test_a_connection_opened_before_the_fork_rebinds_to_a_fresh_tree_in_the_child(
    run_fork: RunFork, endpoint: LocalEndpoint
) -> None:
    result, child = run_fork("mp_inherited_connection")

    assert_fresh_child_tree(child, result.report)
    assert_parent_tree_untouched(result.report)
    assert_both_sessions_stored_once(endpoint)
