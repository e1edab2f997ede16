"""`telemetry.sink=both`: the Databricks service keeps the accounts, a collector gets a mirror."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _otlp_receiver import OtlpReceiver
from _otlp_workload import DRIVER, Told, run_connection
from test_otlp_pipeline import failing_first, otlp_settings, uids
from waiting import poll_until

import actors
from actors.tools.local_endpoint import Fault, LocalEndpoint

TOKEN = "both-token"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.stop()


def service(fault: Fault | None = None) -> LocalEndpoint:
    return LocalEndpoint(host="127.0.0.1", port=0, token=TOKEN, fault=fault).start()


def run_both(
    endpoint: LocalEndpoint, receiver: OtlpReceiver, *, one_tree: bool = False
) -> tuple[Told, dict[str, Any]]:
    """Two sessions; with `one_tree` a keeper connection holds the host's tree for both."""
    settings = otlp_settings(receiver, sink="both", read_timeout_ms=1000)

    def connect() -> actors.Connection:
        return actors.connect(
            endpoint.url,
            settings=settings,
            driver=DRIVER,
            auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
        )

    keeper = connect() if one_tree else None
    told = Told()
    for n in range(2):
        telemetry = connect()
        run_connection(telemetry, f"s{n}", told)
        telemetry.close()
        if keeper is not None:
            poll_until(lambda n=n: len(uids(receiver)) >= (n + 1) * 6, 5.0, "a session's logs")
    if keeper is not None:
        keeper.close()
    actors.shutdown(3.0)
    (entry,) = actors.dump_state()["hosts"].values()
    told.entry = entry
    return told, dict(entry["accounting"])


def rejected_counts(receiver: OtlpReceiver) -> dict[str, int]:
    """The mirror's own undelivered counts, from the last metrics request of each tree."""
    found: dict[tuple[int, str], int] = {}
    for request in receiver.requests("metrics"):
        for rm in request.decoded().resource_metrics:  # type: ignore[attr-defined]
            for metric in rm.scope_metrics[0].metrics:
                if metric.name != "driver_telemetry.otlp.logs.rejected":
                    continue
                for p in metric.sum.data_points:
                    reason = p.attributes[0].value.string_value
                    found[(p.start_time_unix_nano, reason)] = p.as_int
    totals: dict[str, int] = {}
    for (_start, reason), count in found.items():
        totals[reason] = totals.get(reason, 0) + count
    return totals


def test_every_log_reaches_both_the_service_and_the_collector(receiver: OtlpReceiver) -> None:
    endpoint = service()
    try:
        told, accounting = run_both(endpoint, receiver)
        stored = endpoint.store.count()
    finally:
        endpoint.close()

    assert accounting["exported"] == told.events and accounting["balanced"], accounting
    assert stored == told.logs
    assert sorted(uids(receiver)) == sorted(set(uids(receiver)))
    assert len(uids(receiver)) == told.logs


def test_a_retried_service_batch_is_mirrored_once(receiver: OtlpReceiver) -> None:
    endpoint = service(Fault(mode="status", status=503, times=2))
    try:
        told, accounting = run_both(endpoint, receiver)
        stored = endpoint.store.count()
    finally:
        endpoint.close()

    assert accounting["exported"] == told.events and accounting["balanced"], accounting
    assert stored == told.logs
    assert len(uids(receiver)) == len(set(uids(receiver))) == told.logs


def test_a_failing_collector_costs_the_service_nothing_and_is_counted(
    receiver: OtlpReceiver,
) -> None:
    receiver.answer = failing_first(503, {}, times=1)
    endpoint = service()
    try:
        told, accounting = run_both(endpoint, receiver, one_tree=True)
        stored = endpoint.store.count()
    finally:
        endpoint.close()

    assert accounting["exported"] == told.events and accounting["dropped"] == {}, accounting
    assert stored == told.logs
    first = receiver.requests("logs")[0].decoded()
    refused = sum(
        len(sl.log_records)
        for rl in first.resource_logs  # type: ignore[attr-defined]
        for sl in rl.scope_logs
    )
    assert len(uids(receiver)) == len(set(uids(receiver))) == told.logs  # none sent twice
    assert rejected_counts(receiver) == {"http_503": refused}
    # ... and in dump_state(), per host: the exporter's sink entry of each tree.
    (tree,) = told.entry["finished_generations"]
    assert tree["exporter"]["sink"]["mirror_undelivered"] == {"http_503": refused}
    assert tree["exporter"]["sink"]["logs_taken"] == told.logs - refused
