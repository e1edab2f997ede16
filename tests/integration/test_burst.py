"""A one-thread burst at the shipped defaults: the rate limit holds batches back, so they coalesce.

At 10 requests/s (a burst of 20) and 100 logs a batch, a driver thread telling faster than
1,000 statements/s overflows the aggregator's 1,000-log queue (`queue_full`). While the exporter
is backed up, what waits coalesces into larger batches (within the same bound on logs held by
the exporter), so each rate-limited request carries more logs.
"""

from __future__ import annotations

import sqlite3

import actors
from actors.dbapi import instrument
from actors.tools.local_endpoint import LocalEndpoint
from messages.sysconfig import DriverInfo

STATEMENTS = 4000
DRIVER = DriverInfo(name="BurstDriver", version="1.0.0")


def test_a_burst_from_one_thread_at_the_shipped_defaults_sends_larger_requests(
    endpoint: LocalEndpoint, token: str
) -> None:
    db = instrument(
        sqlite3, host=endpoint.url, driver=DRIVER, auth=lambda: {"Authorization": f"Bearer {token}"}
    )
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
