"""The loopback endpoint in a child process, so its CPU and memory are never billed to ours.

`EndpointProcess` starts `actors.LocalEndpoint` (token, feature flag, validation
of every proto log exactly as in the integration tests) in a child Python and steers it over
pipes: `set_fault`, `set_flag`, `stats`, `close`. With `store=False` validated logs are counted
and not written to SQLite, so a long throughput run does not grow the child's memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from _child import ChildProcess
from _common import ROOT, TOKEN, auth_headers, wait_flags


class EndpointProcess(ChildProcess):
    """A `LocalEndpoint` running in a child process; every call has a timeout."""

    name = "bench endpoint"

    def __init__(
        self,
        *,
        flag: bool = True,
        store: bool = False,
        validate: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            [
                __file__,
                "--child",
                "1" if flag else "0",
                "1" if store else "0",
                "1" if validate else "0",
            ],
            timeout_s,
        )
        hello = self._read()
        self.host_port: str = hello["host_port"]
        self.url: str = hello["url"]

    def set_fault(self, spec: str | None) -> None:
        """Misbehave from the next request on (`Fault.parse` spec), or heal with None."""
        self.call("fault", spec=spec)

    def set_flag(self, enabled: bool) -> None:
        """Serve the telemetry feature flag on or off from the next fetch on."""
        self.call("flag", enabled=enabled)

    def stats(self) -> dict[str, Any]:
        """The endpoint's counters (`logs_accepted`, `requests`, `bytes_received`, ...)."""
        return self.call("stats")

    def __enter__(self) -> EndpointProcess:
        return self


@contextlib.contextmanager
def flag_on_and_off(name: str) -> Iterator[tuple[EndpointProcess, EndpointProcess]]:
    """Two light endpoints, the feature flag on at the first and off at the second, each with a
    live tree that has learnt its flag (held by a connection until the block ends)."""
    import actors
    from messages.sysconfig import DriverInfo

    with (
        EndpointProcess(flag=True, validate=False) as on,
        EndpointProcess(flag=False, validate=False) as off,
    ):
        holders = [
            actors.connect(e.url, driver=DriverInfo(name=name, version="1"), auth=auth_headers)
            for e in (on, off)
        ]
        try:
            if not wait_flags({on.host_port: True, off.host_port: False}, 10.0):
                raise RuntimeError("feature flags not fetched within 10 s")
            yield on, off
        finally:
            for holder in holders:
                holder.close()


def _child(flag: bool, store: bool, validate: bool) -> None:
    from actors.tools.local_endpoint import Fault, LocalEndpoint, handler
    from actors.tools.local_endpoint.store import LogStore

    if not validate:  # a light sink: parse the body, count its logs, check nothing else
        handler.validate_request = lambda body, _limit: json.loads(body)["protoLogs"]
    if not store:
        LogStore.add = lambda self, logs, **_: len(logs)  # type: ignore[method-assign]
    endpoint = LocalEndpoint(token=TOKEN, flag_enabled=flag).start()
    out = sys.stdout

    def reply(value: dict[str, Any]) -> None:
        out.write(json.dumps(value) + "\n")
        out.flush()

    reply({"host_port": endpoint.host_port, "url": endpoint.url, "pid": os.getpid()})
    for line in sys.stdin:
        message = json.loads(line)
        command = message["cmd"]
        if command == "fault":
            spec = message.get("spec")
            endpoint.set_fault(Fault.parse(spec) if spec else None)
            reply({"ok": True})
        elif command == "flag":
            endpoint.set_flag(bool(message["enabled"]))
            reply({"ok": True})
        elif command == "stats":
            reply({**endpoint.stats(), "cpu_s": time.process_time()})
        elif command == "stop":
            endpoint.close()
            reply({"ok": True})
            return
    endpoint.close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT))
        _child(sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4] == "1")
