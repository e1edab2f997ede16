"""Child process of the exit-time benchmark: told events are stuck behind a hanging endpoint.

Connects with the shipped defaults (`telemetry.shutdown_timeout_ms` 2000), waits for the flag,
tells statements until the exporter is inside a POST the endpoint never answers, prints the
monotonic time and returns from main without closing or shutting down: the library's own exit
hook has to end the process. The parent measures until it has reaped the process.
"""

from __future__ import annotations

import sys
import time

from _common import auth_headers, ids, wait_flags, wait_until
from _statement_events import tell_statement

import actors
from messages.sysconfig import DriverInfo


def main(url: str) -> None:
    connection = actors.connect(url, driver=DRIVER, auth=auth_headers)
    if not wait_flags({connection.host: True}, 10.0):
        raise RuntimeError("feature flag not fetched within 10 s")
    for sid in ids(300):  # three batches of the default size
        tell_statement(connection.tell, sid)

    def exporter_stuck() -> bool:
        host = actors.dump_state(timeout_s=0.2)["hosts"].get(connection.host, {})
        return host.get("aggregator", {}).get("in_flight_batches", 0) >= 1 and (
            "error" in host.get("exporter", {})
        )

    if not wait_until(exporter_stuck, 10.0, 0.02):
        raise RuntimeError("the exporter never got stuck in a POST")
    print(f"{time.monotonic():.6f}", flush=True)


DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")

if __name__ == "__main__":
    main(sys.argv[1])
