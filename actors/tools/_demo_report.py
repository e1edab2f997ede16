"""The main job's report: what each endpoint stored, each host's accounting, and the verdict."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from actors.tools.local_endpoint import LocalEndpoint

__all__ = ["print_report", "report_of"]

# The accounting of a host that was never told anything: no tree was started, nothing is owed.
IDLE_ACCOUNTING: dict[str, Any] = {
    "told": 0,
    "exported": 0,
    "dropped": {},
    "pending": 0,
    "balanced": True,
}


def report_of(
    endpoints: list[LocalEndpoint],
    state: dict[str, Any],
    counters: list[dict[str, int]],
    clean: bool,
    exit_s: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The report as one JSON-ready document; a host never told anything balances with told 0."""
    hosts = {}
    for ep in endpoints:
        host = state["hosts"].get(ep.host_port, {})
        accounting = host.get("accounting") or (IDLE_ACCOUNTING if not host else {})
        generations = sorted(
            host.get("finished_generations", []), key=lambda g: g.get("generation", 0)
        )
        # every stopped tree is in the host's totals; only the last few finals are kept in full
        exported_logs = host.get("finished_exported_logs", 0)
        stored = ep.store.count(ep.host_port)
        # A request cut off by the shutdown deadline may still have been stored: such logs are
        # counted as dropped (shutdown_timeout) by the client, so the store may hold a few more.
        unconfirmed = accounting.get("dropped", {}).get("shutdown_timeout", 0)
        hosts[ep.host_port] = {
            "endpoint": {
                "stored_logs": stored,
                "by_kind": ep.store.counts_by_kind(ep.host_port),
                "latency_ms_by_statement_type": ep.store.latency_percentiles_by_statement_type(
                    ep.host_port
                ),
                "errors_by_class": ep.store.errors_by_name(ep.host_port),
                "requests": ep.stats()["requests"],
            },
            "accounting": accounting,
            "generations": host.get("finished_trees", len(generations)),
            "exported_logs": exported_logs,
            "store_matches_accounting": exported_logs <= stored <= exported_logs + unconfirmed,
            "final_dump": generations[-1] if generations else {},
        }
    return {
        "workload": {
            "threads": args.threads,
            "duration_s": args.duration,
            "fault": args.fault,
            "statements": sum(c["statements"] for c in counters),
            "driver_errors": sum(c["errors"] for c in counters),
            "connections": sum(c["connections"] for c in counters),
        },
        "shutdown": {"clean": clean, "seconds": round(exit_s, 3)},
        "store": args.db,
        "hosts": hosts,
        "balanced": all(
            h["accounting"].get("balanced") and h["store_matches_accounting"]
            for h in hosts.values()
        ),
    }


def print_report(report: dict[str, Any], out: TextIO) -> None:
    """The report for people: per host, what the endpoint stored and the accounting."""
    w = report["workload"]
    out.write(
        f"\nworkload: {w['threads']} threads, {w['duration_s']} s, fault {w['fault'] or 'none'}: "
        f"{w['connections']} connections, {w['statements']} statements, "
        f"{w['driver_errors']} driver errors\n"
    )
    s = report["shutdown"]
    out.write(f"shutdown: {'clean' if s['clean'] else 'timed out'} in {s['seconds']:.3f} s\n")
    for host, h in report["hosts"].items():
        e, a = h["endpoint"], h["accounting"]
        out.write(f"\n== host {host}\n")
        out.write(f"  endpoint stored {e['stored_logs']} logs: {_kv(e['by_kind']) or 'none'}\n")
        for stype, p in sorted(e["latency_ms_by_statement_type"].items()):
            out.write(
                f"    {stype:<10} latency ms  p50 {p['p50']:.0f}  p90 {p['p90']:.0f}"
                f"  p99 {p['p99']:.0f}\n"
            )
        out.write(f"  errors by class: {_kv(e['errors_by_class']) or 'none'}\n")
        requests = _kv({k: _kv(v) for k, v in e["requests"].items()})
        out.write(f"  requests: {requests or 'none'}\n")
        dropped = a.get("dropped", {})
        out.write(
            f"  accounting: told {a.get('told')} = exported {a.get('exported')} + dropped "
            f"{sum(dropped.values())} ({_kv(dropped) or 'none'}) + pending {a.get('pending')}"
            f"  -> {'balanced' if a.get('balanced') else 'NOT BALANCED'}\n"
        )
        if "otlp" in report:  # the logs went to OTLP: checked against the receiver below
            out.write(f"  exported logs ({h['exported_logs']}) went to OTLP, not to the endpoint\n")
        else:
            match = "matches" if h["store_matches_accounting"] else "DOES NOT MATCH"
            out.write(f"  endpoint store {match} exported logs ({h['exported_logs']})\n")
        final = h["final_dump"]
        if not h["generations"]:
            out.write("  trees started and stopped: 0 (this host had no traffic)\n")
            continue
        out.write(
            f"  trees started and stopped: {h['generations']}; final dump of the last one"
            f" (generation {final.get('generation')}):\n"
        )
        out.write("    " + json.dumps(final, indent=2).replace("\n", "\n    ") + "\n")
    if "otlp" in report:
        o = report["otlp"]
        match = "matches" if o["received_matches_accounting"] else "DOES NOT MATCH"
        out.write(f"\nOTLP via {o['via']}: {o['log_records_received']} log records received,")
        out.write(f" {match} exported logs ({o['exported_logs']}); requests {_kv(o['requests'])}\n")
    if report["store"] != ":memory:":
        out.write(f"\nthe endpoints stored the logs in {report['store']}: see them with `show`\n")
    out.write(
        f"\n{'OK: every event accounted for' if report['balanced'] else 'FAIL: accounts differ'}\n"
    )


def _kv(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(mapping.items()))
