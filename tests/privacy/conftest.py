"""Fixtures for the privacy corpus: `wire`, the real local endpoint behind a recording relay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _wire import TOKEN, Relay, Wire

from actors.tools.local_endpoint import LocalEndpoint


@pytest.fixture
def wire() -> Iterator[Wire]:
    """A started local endpoint wanting `TOKEN`, reached through a recording relay."""
    endpoint = LocalEndpoint(host="127.0.0.1", port=0, token=TOKEN, stop_timeout_s=2.0)
    endpoint.start()
    host, port = endpoint.host_port.rsplit(":", 1)
    relay = Relay((host, int(port)))
    try:
        yield Wire(endpoint, relay)
    finally:
        relay.stop()
        endpoint.close()
