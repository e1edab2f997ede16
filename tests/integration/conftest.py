"""Fixtures for whole-pipeline tests: real local endpoints and the helpers to wait on the actors.

Stopping everything after each test is the job of the autouse `stop_all_actors` fixture in
``tests/conftest.py`` (``actors.shutdown`` then ``ActorRegistry.stop_all``). It is set up first
and torn down last, so the endpoints started here are stopped (releasing any hanging request)
before it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from thread_names import OUR_THREAD_PREFIXES, threads_named

import actors
from actors.tools.local_endpoint import LocalEndpoint

TOKEN = "integration-token"


class Harness:
    """What every test needs to synchronise with the actors: polling, reports, settled accounts."""

    def __init__(self, wait_until: Callable[..., Any]) -> None:
        self._wait_until = wait_until

    def wait_until(
        self, condition: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition"
    ) -> Any:
        """Poll `condition` until it returns something truthy (returned), or fail."""
        return self._wait_until(condition, timeout_s, what)

    def report(self, host: str, timeout_s: float = 2.0) -> dict[str, Any]:
        """`dump_state()` of one host (its live actors, finished generations and accounting)."""
        hosts: dict[str, Any] = actors.dump_state(timeout_s)["hosts"]
        assert host in hosts, f"{host} not in dump_state: {sorted(hosts)}"
        return dict(hosts[host])

    def settled(self, host: str, told: int, timeout_s: float = 5.0) -> dict[str, Any]:
        """Wait until `told` events of `host` are all accounted for; return the balanced account."""

        def done() -> dict[str, Any] | None:
            account = actors.dump_state()["hosts"].get(host, {}).get("accounting")
            if account and account["told"] == told and account["pending"] == 0:
                return dict(account)
            return None

        account: dict[str, Any] = self.wait_until(
            done, timeout_s, f"{told} events of {host} to settle"
        )
        assert account["balanced"], account
        return account

    @staticmethod
    def threads() -> list[str]:
        """Names of live threads the facade started (registry, host trees, timers)."""
        return threads_named(OUR_THREAD_PREFIXES)


@pytest.fixture
def harness(wait_until: Callable[..., Any]) -> Harness:
    """Synchronisation helpers (see `Harness`)."""
    return Harness(wait_until)


@pytest.fixture
def token() -> str:
    """The bearer token every endpoint wants unless a test says otherwise."""
    return TOKEN


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
