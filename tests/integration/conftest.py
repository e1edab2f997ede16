"""Fixtures for whole-pipeline tests: real local endpoints, fast settings, no thread left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

import actors
from actors.local_endpoint import LocalEndpoint

TOKEN = "integration-token"
STOP_TIMEOUT_S = 2.0
# Thread names of everything a telemetry tree starts (pykka names threads `<Class>-<n>`).
TELEMETRY_THREAD_PREFIXES = (
    "RegistryActor-",
    "HostSupervisor-",
    "FeatureFlagActor-",
    "AggregatorActor-",
    "ExporterActor-",
    "telemetry-timer-",
)


def telemetry_threads() -> list[str]:
    """Names of live threads that belong to the telemetry actor trees."""
    return [
        thread.name
        for thread in threading.enumerate()
        if thread.name.startswith(TELEMETRY_THREAD_PREFIXES) and thread.is_alive()
    ]


def wait_until(
    condition: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy (and return it), or fail at the deadline."""
    deadline_s = time.monotonic() + timeout_s
    stop = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        stop.wait(0.01)


@pytest.fixture(autouse=True)
def no_telemetry_left_behind() -> Iterator[None]:
    """Shut the facade and every actor down after each test, and wait for their threads to end.

    Autouse fixtures are set up first and torn down last, so the test's endpoints are already
    stopped (releasing any hanging request) by the time this runs.
    """
    yield
    actors.shutdown(STOP_TIMEOUT_S)
    pykka.ActorRegistry.stop_all(timeout=STOP_TIMEOUT_S)
    deadline_s = time.monotonic() + STOP_TIMEOUT_S
    stop = threading.Event()
    while telemetry_threads() and time.monotonic() < deadline_s:
        stop.wait(0.01)


@pytest.fixture
def token() -> str:
    """The bearer token every endpoint wants unless a test says otherwise."""
    return TOKEN


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """`wait_until(condition, timeout_s, what)`: poll with a deadline instead of sleeping."""
    return wait_until


@pytest.fixture(name="telemetry_threads")
def telemetry_threads_fixture() -> Callable[[], list[str]]:
    """`telemetry_threads()`: names of the telemetry threads still alive."""
    return telemetry_threads


@pytest.fixture
def make_endpoint(token: str) -> Iterator[Callable[..., LocalEndpoint]]:
    """Start `LocalEndpoint`s on 127.0.0.1:0 (wanting `token` unless told otherwise); stop all."""
    started: list[LocalEndpoint] = []

    def make(**options: Any) -> LocalEndpoint:
        options.setdefault("token", token)
        endpoint = LocalEndpoint(host="127.0.0.1", port=0, stop_timeout_s=2.0, **options)
        endpoint.start()
        started.append(endpoint)
        return endpoint

    yield make
    for endpoint in started:
        endpoint.close()


@pytest.fixture
def endpoint(make_endpoint: Callable[..., LocalEndpoint]) -> LocalEndpoint:
    """One healthy endpoint: flag on, wanting `token`."""
    return make_endpoint()
