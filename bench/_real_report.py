"""The headline table from `real_path`'s raw results: one line per row, the issue's targets beside.

Every figure is a median over rounds of a per-round difference (a way minus the raw driver in the
same round), in µs per statement; ratios to OpenTelemetry are per round too, then the median.
"""

from __future__ import annotations

from typing import Any

from _table import _fmt

KIND_LABEL = {
    "point": "point select",
    "insert": "insert",
    "rows20": "20-row select",
    "mix": "mix of the three",
    "churn": "churn: connect, 1 statement, close",
    "cycle": "connect/close cycle, tree live",
    "burst": "burst: 4,000 point selects, 1 thread",
    "burst4": "burst: 4,000 point selects, 4 threads",
}
FAST = {"pyodbc|point", "psycopg 3|point"}  # "fast real statements" in the targets
OTEL_RATIO = 1 / 3  # at least 3x cheaper than OpenTelemetry, wall and CPU


def _med(figures: dict[str, Any], key: str) -> float | None:
    value = figures.get(key, {}).get("median")
    return None if value is None else float(value)


def _check(label: str, value: float | None, limit: float) -> tuple[str, bool | None]:
    if value is None:
        return f"{label} ?", None
    return label, value <= limit


def _targets(key: str, figures: dict[str, Any], arrived: dict[str, int]) -> list[tuple[str, Any]]:
    kind = key.split("|", 1)[1]
    checks: list[tuple[str, bool | None]] = []
    if key in FAST:
        checks.append(_check("+wall ≤ 20 µs", _med(figures, "enabled_wall_us"), 20.0))
        checks.append(_check("+CPU ≤ 25 µs", _med(figures, "enabled_cpu_us"), 25.0))
    if kind == "mix":
        checks.append(_check("wall ≤ 1.05×", _med(figures, "enabled_wall_x"), 1.05))
    if kind == "cycle":
        checks.append(_check("cycle +wall ≤ 50 µs", _med(figures, "enabled_wall_us"), 50.0))
    else:
        wall, cpu = _med(figures, "ratio_wall"), _med(figures, "ratio_cpu")
        checks.append(_check("≤ ⅓ OTel wall", wall, OTEL_RATIO))
        checks.append(_check("≤ ⅓ OTel CPU", cpu, OTEL_RATIO))
    checks.append(_check("disabled +wall ≤ 1 µs", _med(figures, "disabled_wall_us"), 1.0))
    complete = (
        arrived["ours_dropped"] == 0
        and arrived["ours"] == arrived["ours_emitted"]
        and (kind == "cycle" or arrived["ours_statement_logs"] == arrived["statements"])
    )
    checks.append(("0 drops, all arrived", complete))
    return checks


def headline_rows(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per row: label, the medians, what arrived, the targets and whether each is met."""
    out = []
    for key, block in raw["rows"].items():
        figures, arrived = block["figures"], block["arrived"]
        driver, kind = key.split("|", 1)
        otel_expected = 0 if kind == "cycle" else arrived["statements"]
        checks = _targets(key, figures, arrived)
        out.append(
            {
                "row": f"{driver}: {KIND_LABEL.get(kind, kind)}",
                "key": key,
                "statements_per_run": block["statements_per_run"],
                "medians": {k: v.get("median") for k, v in figures.items()},
                "spreads": {k: (v.get("min"), v.get("max")) for k, v in figures.items()},
                "arrived": arrived,
                "otel_complete": arrived["otel"] == otel_expected,
                "targets": [{"target": label, "met": met} for label, met in checks],
                "met": all(met for _, met in checks if met is not None),
            }
        )
    return out


def _noise(spread: tuple[float | None, float | None] | None) -> str:
    """The largest |raw again - raw| over the rounds: how much a row moves by itself."""
    if not spread or spread[0] is None or spread[1] is None:
        return "-"
    return _fmt(max(abs(spread[0]), abs(spread[1])))


def _split(medians: dict[str, Any], way: str) -> str:
    """Added CPU on the driver threads / in the other threads (background, flush)."""
    driver = medians.get(f"{way}_driver_cpu_us")
    background = medians.get(f"{way}_background_cpu_us")
    if driver is None or background is None:
        return "-"
    return f"{_fmt(driver)}/{_fmt(background)}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_headline(raw: dict[str, Any]) -> str:
    """The plain-text headline table (the first thing `run.py` prints)."""
    header = (
        "row",
        "raw µs/st",
        "ours +wall",
        "min–max",
        "+CPU",
        "driver/bg",
        "disabled +wall",
        "+CPU",
        "OTel +wall",
        "+CPU",
        "driver/bg",
        "ours÷OTel wall",
        "CPU",
        "noise ±wall",
        "arrived ours/OTel",
        "targets",
    )
    lines: list[tuple[str, ...]] = [header]
    for row in headline_rows(raw):
        m = row["medians"]
        a = row["arrived"]
        targets = "; ".join(
            f"{t['target']} {({True: 'yes', False: 'NO', None: '?'})[t['met']]}"
            for t in row["targets"]
        )
        arrived = f"{a['ours_statement_logs']}/{a['otel']} of {a['statements']}"
        if row["key"].endswith("|cycle"):
            arrived = f"{a['ours']} logs/{a['otel']} spans"
        if a["ours_dropped"]:
            by = ", ".join(f"{k} {v}" for k, v in sorted(a.get("ours_dropped_by", {}).items()))
            arrived += f", {a['ours_dropped']} events dropped ({by})"
        wall_x = m.get("enabled_wall_x")
        ours_wall = _fmt(m.get("enabled_wall_us"))
        if row["key"].endswith("|mix") and wall_x is not None:
            ours_wall += f" ({wall_x:.3f}×)"
        lines.append(
            (
                row["row"],
                _fmt(m.get("raw_wall_us")),
                ours_wall,
                "–".join(_fmt(v) for v in row["spreads"].get("enabled_wall_us", (None, None))),
                _fmt(m.get("enabled_cpu_us")),
                _split(m, "enabled"),
                _fmt(m.get("disabled_wall_us")),
                _fmt(m.get("disabled_cpu_us")),
                _fmt(m.get("otel_wall_us")),
                _fmt(m.get("otel_cpu_us")),
                _split(m, "otel"),
                _ratio(m.get("ratio_wall")),
                _ratio(m.get("ratio_cpu")),
                _noise(row["spreads"].get("raw_again_wall_us")),
                arrived,
                targets,
            )
        )
    for name, reason in raw.get("skipped", {}).items():
        lines.append((f"{name}: skipped", *([""] * (len(header) - 2)), reason))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = []
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)]
        text.append("  ".join([*cells, line[-1]]).rstrip())
    statements = sorted({r["statements_per_run"] for r in headline_rows(raw)})
    runs = "/".join(map(str, statements))
    text.append(
        "\nµs per statement (per request for churn, per cycle for connect/close), added to the raw"
        f" driver in the same round; medians of {raw['repeats']} rounds (min–max over rounds),"
        f" {raw['threads']} threads (bursts: as many as their row says), {runs} statements per"
        " run; flush inside the timing."
    )
    return "\n".join(text)
