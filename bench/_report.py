"""Turn the sections' raw results into one table: medians, spread over repeats, ratios, targets."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from _common import summary

Row = dict[str, Any]


def _row(
    item: str,
    metric: str,
    unit: str,
    values: Iterable[float | None],
    *,
    p99: Iterable[float | None] | None = None,
    ratio: float | None = None,
    ratio_of: str = "",
    target: str = "",
    met: bool | None = None,
    note: str = "",
) -> Row:
    stats = summary(v for v in values if v is not None)
    p99_stats = summary(v for v in p99 if v is not None) if p99 is not None else None
    return {
        "item": item,
        "metric": metric,
        "unit": unit,
        "median": stats["median"],
        "min": stats["min"],
        "max": stats["max"],
        "spread_pct": stats["spread_pct"],
        "runs": stats["values"],
        "p99": p99_stats["median"] if p99_stats else None,
        "ratio": ratio,
        "ratio_of": ratio_of,
        "target": target,
        "met": met,
        "note": note,
    }


def _med(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def _error_row(item: str, name: str, error: str) -> Row:
    return _row(item, f"{name}: not measured", "", [], note=error[:200])


def driver_rows(raw: dict[str, Any]) -> list[Row]:
    """Item 1."""
    runs = raw["runs"]

    def med(name: str, key: str) -> float | None:
        return _med(r[key] for r in runs[name])

    def ratio_to_floor(name: str) -> float | None:
        ratios = [
            a["median_us"] / f["median_us"] for a, f in zip(runs[name], runs["floor"], strict=True)
        ]
        return _med(ratios)

    def per_call(name: str, metric: str, **kw: Any) -> Row:
        return _row(
            "1",
            metric,
            "µs/event",
            (r["median_us"] for r in runs[name]),
            p99=(r["p99_us"] for r in runs[name]),
            note=kw.pop("note", "") + f" mean {med(name, 'mean_us'):.2f} µs",
            **kw,
        )

    enabled = med("enabled", "median_us") or 0.0
    guarded = med("disabled_guarded", "median_us") or 0.0
    tell_only = med("disabled_tell_only", "median_us") or 0.0
    rows = [
        per_call("floor", "floor: tuple + SimpleQueue.put (consumer thread)"),
        per_call("construct_only", "constructing the event alone"),
        per_call(
            "enabled",
            "enabled: construct + tell, tree live, flag on",
            ratio=ratio_to_floor("enabled"),
            ratio_of="÷ floor",
            target="≤ 2 µs median",
            met=enabled <= 2.0,
        ),
        per_call(
            "flag_off",
            "server flag off: construct + tell",
            ratio=ratio_to_floor("flag_off"),
            ratio_of="÷ floor",
        ),
        per_call(
            "disabled",
            "disabled in config: construct + tell",
            ratio=ratio_to_floor("disabled"),
            ratio_of="÷ floor",
            note="construction alone is most of it;",
        ),
        per_call(
            "disabled_tell_only",
            "disabled in config: tell of a built event",
            target="≤ 0.1 µs",
            met=tell_only <= 0.1,
        ),
        per_call(
            "disabled_guarded",
            "disabled in config: `if conn.enabled:` guard",
            target="≤ 0.1 µs",
            met=guarded <= 0.1,
        ),
        _row(
            "1",
            "back-to-back loop, floor: wall per event",
            "µs/event",
            (r["wall_us"] for r in runs["floor_back_to_back"]),
            note=f"thread CPU {med('floor_back_to_back', 'thread_cpu_us'):.2f} µs/event",
        ),
        _row(
            "1",
            "back-to-back loop, enabled: wall per event",
            "µs/event",
            (r["wall_us"] for r in runs["enabled_back_to_back"]),
            ratio=_med(
                e["wall_us"] / f["wall_us"]
                for e, f in zip(
                    runs["enabled_back_to_back"], runs["floor_back_to_back"], strict=True
                )
            ),
            ratio_of="÷ floor loop",
            note="includes the GIL time the tree takes meanwhile; thread CPU "
            f"{med('enabled_back_to_back', 'thread_cpu_us'):.2f} µs/event",
        ),
    ]
    return rows


def statement_rows(raw: dict[str, Any]) -> list[Row]:
    """Item 2."""
    runs = raw["runs"]["exported"]
    parts = raw["runs"]["components"]
    cpu = _med(r["process_cpu_us"] for r in runs) or 0.0

    def part(metric: str, key: str, source: list[dict[str, float]], unit: str) -> Row:
        return _row("2", metric, unit, (r[key] for r in source))

    return [
        _row(
            "2",
            "process CPU per exported statement (5 events, all threads)",
            "µs/statement",
            (r["process_cpu_us"] for r in runs),
            target="≤ 40 µs",
            met=cpu <= 40.0,
            note=f"{raw['statements_per_run']} statements per run, defaults, until the light "
            "endpoint acknowledged every log",
        ),
        _row(
            "2",
            "  the same, fully validating endpoint",
            "µs/statement",
            (r["process_cpu_us"] for r in raw["runs"].get("validated", [])),
            note="its validation (~60 µs CPU per log) shares the 2 cores meanwhile",
        ),
        part("  of which driver thread", "driver_thread_us", runs, "µs/statement"),
        part("  of which aggregator thread", "aggregator_us", runs, "µs/statement"),
        part("  of which exporter thread", "exporter_us", runs, "µs/statement"),
        part("component: fold 5 events + build log", "build_log_us", parts, "µs/log"),
        part("component: encode one log (JSON)", "encode_log_us", parts, "µs/log"),
        _row(
            "2",
            "component: request body, per log (batch 100)",
            "µs/log",
            (r["encode_request_per_log_us"] for r in parts),
            note=f"log size {_med(r['log_bytes'] for r in parts):.0f} bytes",
        ),
    ]


def encode_rows(raw: dict[str, Any]) -> list[Row]:
    """Encoding one log: the converter and the generated encoder (byte-identical output)."""
    runs = raw["runs"]
    return [
        _row(
            "2",
            "encode one log: cattrs converter + json (the definition)",
            "µs/log",
            (r["converter_us"] for r in runs),
            note=f"{raw['logs']} statement logs of {raw['log_bytes']:.0f} bytes, one thread",
        ),
        _row(
            "2",
            "encode one log: generated encoder (messages.encode, on the wire)",
            "µs/log",
            (r["generated_us"] for r in runs),
            ratio=_med(r["ratio"] for r in runs),
            ratio_of="÷ converter",
            note="output checked byte-identical on every log before timing",
        ),
    ]


def throughput_rows(raw: dict[str, Any]) -> list[Row]:
    """Item 3."""
    rows = []
    for profile, results in raw["profiles"].items():
        ceiling = results["export_ceiling_per_s"]
        label = "shipped defaults" if not results["settings"] else f"tuned {results['settings']}"
        for threads in ("1", "4", "16"):
            result = results.get(threads)
            if result is None:
                continue
            sustained = result["sustained_per_s"]
            tuned = profile == "tuned"
            rows.append(
                _row(
                    "3",
                    f"{profile}, {threads} thread(s): sustained, zero drops",
                    "events/s",
                    [sustained],
                    target="≥ 50,000" if tuned else "",
                    met=(sustained is not None and sustained >= 50_000) if tuned else None,
                    note=f"{label}; export ceiling {ceiling:,.0f}/s; drops/backlog begin at "
                    + (
                        f"{result['drops_begin_per_s']:,.0f}/s"
                        if result["drops_begin_per_s"]
                        else "not reached (every step held)"
                    ),
                )
            )
            flood = result["flood"]
            rows.append(
                _row(
                    "3",
                    f"{profile}, {threads} thread(s): flood, processed",
                    "events/s",
                    [flood["processed_per_s"]],
                    note=f"offered {flood['offered_per_s']:,.0f}/s; dropped "
                    f"{sum(flood['dropped'].values()):,} ({', '.join(flood['dropped']) or '-'})",
                )
            )
    return rows


def workload_rows(raw: dict[str, Any]) -> list[Row]:
    """Item 4."""
    rows = []
    for variant, data in raw["variants"].items():
        rounds = data["rounds"]
        label = "~1 ms statements" if variant == "1ms" else "raw sqlite3"
        for way in ("disabled", "enabled"):
            walls = [r[way]["wall_ratio"] for r in rounds]
            wall = _med(walls) or 0.0
            one_ms_enabled = variant == "1ms" and way == "enabled"
            rows.append(
                _row(
                    "4",
                    f"{label}, telemetry {way}: wall time",
                    "× not instrumented",
                    walls,
                    target="≤ 1.01" if one_ms_enabled else "",
                    met=wall <= 1.01 if one_ms_enabled else None,
                    note=f"not instrumented {_med(r['none']['wall_s'] for r in rounds):.3f} s, "
                    f"{raw['threads']} threads x {data['statements_per_thread']} statements",
                )
            )
            rows.append(
                _row(
                    "4",
                    f"{label}, telemetry {way}: process CPU",
                    "× not instrumented",
                    [r[way]["cpu_ratio"] for r in rounds],
                )
            )
    return rows


def peer_rows(raw: dict[str, Any], ours: dict[str, Any]) -> list[Row]:
    """Item 5, with our figures as ratios to each peer's."""
    rows = []
    for name in ("databricks-sql-connector", "opentelemetry-sdk"):
        peer = raw.get(name, {})
        if "runs" not in peer:
            rows.append(_error_row("5", name, peer.get("error", "not run")))
            continue
        runs = peer["runs"]
        median = _med(r["median_us"] for r in runs)
        mean = _med(r["mean_us"] for r in runs)
        rate = _med(r["events_per_s"] for r in runs)
        our_median, our_mean, our_rate = (
            ours.get("median_us"),
            ours.get("mean_us"),
            ours.get("events_per_s"),
        )
        rows.append(
            _row(
                "5",
                f"{name} {peer['version']}: driver-thread cost per event",
                "µs/event",
                (r["median_us"] for r in runs),
                p99=(r["p99_us"] for r in runs),
                ratio=our_median / median if our_median and median else None,
                ratio_of="ours ÷ theirs (median)",
                note=f"mean {mean:.1f} µs (ours ÷ theirs {our_mean / mean:.3f})"
                if our_mean and mean
                else "",
            )
        )
        rows.append(
            _row(
                "5",
                f"{name}: events/s, one thread",
                "events/s",
                (r["events_per_s"] for r in runs),
                ratio=our_rate / rate if our_rate and rate else None,
                ratio_of="ours ÷ theirs",
                note=f"accepted {_med(r['accepted_of_sent'] for r in runs):.0%} of sent; "
                + (
                    "its exporter is a no-op (no HTTP); "
                    if name == "opentelemetry-sdk"
                    else "its HTTP to the same endpoint; "
                )
                + "ours: tuned profile, one thread, exported, zero drops"
                + (
                    f" (our flood intake {ours['flood_per_s']:,.0f}/s)"
                    if ours.get("flood_per_s")
                    else ""
                ),
            )
        )
    return rows


def bounds_rows(raw: dict[str, Any]) -> list[Row]:
    """Item 6."""
    outage = raw["outage"]
    samples = outage["samples"]
    start = outage["phases"].get("outage_start_s", 0.0)
    end = outage["phases"].get("outage_end_s", samples[-1]["t_s"] if samples else 0.0)
    during = [s for s in samples if start <= s["t_s"] <= end]
    second_half = [s for s in during if s["t_s"] >= (start + end) / 2]
    rss_before = _med(s["rss_mb"] for s in samples if s["t_s"] < start) or 0.0
    rss_max = max((s["rss_mb"] for s in during), default=0.0)
    slope = _slope([(s["t_s"], s["rss_mb"]) for s in second_half]) * 60
    pending = [s["pending_events"] for s in during if s["pending_events"] is not None]
    bound = outage["pending_bound_events"]
    dropped = during[-1]["dropped"] if during else {}
    exits = raw["exit"]["exit_s"]
    limit = raw["exit"]["shutdown_timeout_s"] + 0.3
    return [
        _row(
            "6",
            f"outage {end - start:.0f} s (every POST hangs): RSS growth, 2nd half",
            "MB/min",
            [slope],
            target="flat",
            met=abs(slope) < 2.0,
            note=f"RSS {rss_before:.1f} MB before, max {rss_max:.1f} MB during; "
            f"{outage['rate_per_s']:,.0f} events/s told by {outage['threads']} threads",
        ),
        _row(
            "6",
            "outage: max events held by the tree",
            "events",
            [max(pending, default=0)],
            target=f"≤ bound {bound:,}",
            met=max(pending, default=0) <= bound,
            note="dropped during outage: "
            + ", ".join(f"{k} {v:,}" for k, v in dropped.items())
            + f"; balanced after: {outage['accounting'].get('balanced')}",
        ),
        _row(
            "6",
            "exit with a hanging endpoint (exit hook only)",
            "s",
            exits,
            target=f"≤ {limit:.1f} s",
            met=max(exits, default=99.0) <= limit,
            note=f"telemetry.shutdown_timeout_ms {raw['exit']['shutdown_timeout_s'] * 1000:.0f}",
        ),
    ]


def connect_rows(raw: dict[str, Any]) -> list[Row]:
    """Item 7."""
    runs = raw["runs"]
    return [
        _row("7", "first connect of a host (starts its tree)", "ms", (r["first_ms"] for r in runs)),
        _row("7", "connect to a host already live", "ms", (r["live_ms"] for r in runs)),
        _row("7", "close of a connection (not the last)", "ms", (r["close_ms"] for r in runs)),
    ]


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var if var else 0.0


def build_rows(results: dict[str, Any]) -> list[Row]:
    """All rows, in item order; a section that failed gives one row saying why."""
    rows: list[Row] = []
    ours: dict[str, Any] = {}
    driver = results.get("driver", {})
    if "runs" in driver:
        ours["median_us"] = _med(r["median_us"] for r in driver["runs"]["enabled"])
        ours["mean_us"] = _med(r["mean_us"] for r in driver["runs"]["enabled"])
    tuned = results.get("throughput", {}).get("profiles", {}).get("tuned", {})
    ours["events_per_s"] = tuned.get("1", {}).get("sustained_per_s")
    ours["flood_per_s"] = tuned.get("1", {}).get("flood", {}).get("processed_per_s")
    builders = {
        "driver": driver_rows,
        "statement": statement_rows,
        "encode": encode_rows,
        "throughput": throughput_rows,
        "workload": workload_rows,
        "peers": lambda raw: peer_rows(raw, ours),
        "bounds": bounds_rows,
        "connect": connect_rows,
    }
    for name, build in builders.items():
        raw = results.get(name)
        if raw is None:
            continue
        if "error" in raw:
            rows.append(_error_row(name, name, raw["error"]))
            continue
        try:
            rows.extend(build(raw))
        except Exception as exc:  # a report bug must not lose the other sections
            rows.append(_error_row(name, name, f"report: {type(exc).__name__}: {exc}"))
    return rows
