"""A one-thread burst the rate limit holds back: what waits coalesces into larger requests.

At the shipped 10 requests/s (a burst of 20) and 100 logs a batch, a driver thread telling
faster than 1,000 statements/s overflows the aggregator's 1,000-log queue (`queue_full`). While
the exporter is backed up, what waits coalesces into larger batches (within the same bound on
logs held by the exporter), so each rate-limited request carries more logs. The test lowers the
rate limit to one request a second, so the burst outpaces it however busy the machine is.
"""

from __future__ import annotations

import sqlite3

import actors
from actors.dbapi import instrument
from actors.tools.local_endpoint import LocalEndpoint
from messages.sysconfig import DriverInfo

STATEMENTS = 2000
SLOW = {"telemetry.rate_limit_per_s": "1", "telemetry.rate_limit_burst": "1"}
DRIVER = DriverInfo(name="BurstDriver", version="1.0.0")


def test_a_burst_held_back_by_the_rate_limit_goes_in_larger_requests(
    endpoint: LocalEndpoint, token: str
) -> None:
    def auth() -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    db = instrument(sqlite3, host=endpoint.url, driver=DRIVER, auth=auth, properties=SLOW)
    conn = db.connect(":memory:")
    try:
        assert actors.flush(10.0)  # the flag and the connection log, before the burst
        for i in range(STATEMENTS):
            cur = conn.cursor()
            cur.execute("SELECT ?", (i,))
            cur.fetchone()
            cur.close()
        assert actors.flush(30.0)
        host = actors.dump_state()["hosts"][endpoint.host_port]
    finally:
        conn.close()
    account = host["accounting"]
    assert account["balanced"], account
    exported_logs = host["aggregator"]["exported_logs"]
    requests = sum(endpoint.stats()["requests"].get("/telemetry-ext", {}).values())
    assert requests
    assert exported_logs / requests > 100  # more logs per request than a batch holds
