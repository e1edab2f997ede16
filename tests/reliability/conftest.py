"""Fixtures for reliability tests: child programs in fresh interpreters, and local endpoints.

Child programs live in `scripts/`. They print nothing: each reports what it saw as JSON in a
file whose path it is given, so a test can insist that the child's stdout and stderr stay empty.
Every child runs with a timeout, from the repository root, with the repository on PYTHONPATH
and no telemetry settings inherited from the environment.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from interpreter import interpreter_flags
from waiting import poll_until

from actors.tools.local_endpoint import Fault, LocalEndpoint

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = pathlib.Path(__file__).resolve().parent / "scripts"
TOKEN = "reliability-token"
CHILD_TIMEOUT_S = 30.0


def child_env() -> dict[str, str]:
    """The parent's environment with the repository importable and no telemetry overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABRICKS_", "PYTHON"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no caches written into scripts/ by children
    return env


@attrs.frozen
class ChildRun:
    """How a child program ended: exit code, output, when it ended and its JSON report."""

    returncode: int
    stdout: str
    stderr: str
    ended_s: float  # the parent's time.monotonic() right after the child was reaped
    report: dict[str, Any]
    report_path: pathlib.Path

    def exit_s(self, since_s: float | None = None) -> float:
        """Seconds from the child's reported end of work (or `since_s`) until it was reaped."""
        start_s = self.report["workload_done_s"] if since_s is None else since_s
        return self.ended_s - float(start_s)


def read_report(path: pathlib.Path) -> dict[str, Any]:
    """The child's JSON report, or {} if it wrote none."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


class Child:
    """A started child program: `finish()` waits for it (boundedly) and collects its report."""

    def __init__(self, script: str, spec: dict[str, Any], report: pathlib.Path) -> None:
        self.report = report
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *interpreter_flags(),
                str(SCRIPTS / script),
                json.dumps({**spec, "report": str(report)}),
            ],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout_s: float = CHILD_TIMEOUT_S) -> ChildRun:
        """Wait for the child to exit; kill it and fail the test if it outlives `timeout_s`."""
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"child did not exit within {timeout_s} s\n{self.post_mortem()}")
        ended_s = time.monotonic()
        report = read_report(self.report)
        return ChildRun(self.proc.returncode, stdout, stderr, ended_s, report, self.report)

    def post_mortem(self) -> str:
        """Kill a hung child; its signal state first (a signal it ignores or blocks explains many
        hangs: SIGINT ignored, inherited from a shell's background job, was one)."""
        status = pathlib.Path(f"/proc/{self.proc.pid}/status")
        try:
            lines = [line for line in status.read_text().splitlines() if line.startswith("Sig")]
        except OSError:
            lines = []
        self.kill()
        return "\n".join(lines)

    def kill(self) -> None:
        """Kill the child if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=5.0)


@pytest.fixture(scope="session")
def child_program() -> Callable[[str, dict[str, Any], pathlib.Path], Child]:
    """`child_program(script, spec, report_path)`: start a child (for module-scoped fixtures)."""
    return Child


@pytest.fixture
def start_child(tmp_path: pathlib.Path) -> Iterator[Callable[..., Child]]:
    """`start_child(script, **spec)`: start a child program; any still running is killed after."""
    started: list[Child] = []

    def start(script: str, **spec: Any) -> Child:
        child = Child(script, spec, tmp_path / f"report-{len(started) + 1}.json")
        started.append(child)
        return child

    yield start
    for child in started:
        if child.proc.returncode is None:
            child.kill()


@pytest.fixture
def run_child(start_child: Callable[..., Child]) -> Callable[..., ChildRun]:
    """`run_child(script, timeout_s=..., **spec)`: run a child program to its end."""

    def run(script: str, timeout_s: float = CHILD_TIMEOUT_S, **spec: Any) -> ChildRun:
        return start_child(script, **spec).finish(timeout_s)

    return run


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (returned), or fail at the deadline."""
    return poll_until(condition, timeout_s, what)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """`wait_for(condition, timeout_s, what)`: poll a condition with a deadline."""
    return wait_for


@pytest.fixture
def token() -> str:
    """The bearer token endpoints want, and children send."""
    return TOKEN


@pytest.fixture
def make_endpoint(token: str) -> Iterator[Callable[..., LocalEndpoint]]:
    """`make_endpoint(fault=None, **options)`: a started loopback endpoint wanting `token`."""
    started: list[LocalEndpoint] = []

    def make(fault: str | None = None, **options: Any) -> LocalEndpoint:
        options.setdefault("token", token)
        endpoint = LocalEndpoint(
            host="127.0.0.1",
            port=0,
            stop_timeout_s=2.0,
            fault=Fault.parse(fault) if fault else None,
            **options,
        )
        started.append(endpoint)
        return endpoint.start()

    yield make
    for endpoint in started:
        endpoint.close()
