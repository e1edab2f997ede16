"""The plain-text table `run.py` prints: one line per row, columns padded to fit."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def format_table(rows: list[Row]) -> str:
    """One plain-text table, a line per row."""
    header = ("#", "metric", "median", "min–max", "p99", "unit", "ratio", "target", "ok", "notes")
    lines = [header]
    for r in rows:
        spread = f"{_fmt(r['min'])}–{_fmt(r['max'])}" if len(r["runs"]) > 1 else ""
        ratio = f"{r['ratio']:.3f} {r['ratio_of']}" if r["ratio"] is not None else ""
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        lines.append(
            (
                r["item"],
                r["metric"],
                _fmt(r["median"]),
                spread,
                _fmt(r["p99"]) if r["p99"] is not None else "",
                r["unit"],
                ratio,
                r["target"],
                met,
                r["note"],
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [str(c).ljust(w) for c, w in zip(line[:-1], widths, strict=True)]
        out.append("  ".join([*cells, str(line[-1])]).rstrip())
    return "\n".join(out)
