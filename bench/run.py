"""The benchmark suite's one entry point: `python bench/run.py [--quick] [--out FILE]`.

Each section runs in a fresh Python process (so one section's threads, imports and memory never
bill another), against a loopback endpoint in yet another process. The parent prints one table
and writes it, with every raw figure, as JSON. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT
from _postgres import SCRATCH_ENV, stop_leftovers
from _real_report import format_headline, headline_rows
from _report import build_rows
from _table import format_table

HERE = Path(__file__).resolve().parent
# name -> module; order matters: `real` (the headline) first; `bounds` runs at the rate
# `throughput` found sustainable.
SECTIONS = {
    "real": "real_path",
    "driver": "driver_cost",
    "statement": "statement_cpu",
    "encode": "encode_cost",
    "throughput": "throughput",
    "workload": "workload",
    "peers": "peers",
    "bounds": "bounds",
    "connect": "connect_cost",
}
SECTION_TIMEOUT_S = 600


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in (
        "pykka",
        "cattrs",
        "attrs",
        "urllib3",
        "databricks-sql-connector",
        "opentelemetry-instrumentation-dbapi",
        "opentelemetry-exporter-otlp-proto-http",
        "pyodbc",
        "psycopg",
    ):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["opentelemetry-sdk"] = importlib.metadata.version("opentelemetry-sdk")
    except importlib.metadata.PackageNotFoundError:
        out["opentelemetry-sdk"] = None
    return out


def _load() -> str:
    """The 1, 5 and 15 minute load averages (other work competing for the CPUs)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _run_section(name: str, quick: bool, context: dict[str, Any]) -> dict[str, Any]:
    """Run one section in a child process; its result, or {"error": ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        # Servers a section starts live under `tmp` (traversable by the `postgres` user), so a
        # section killed at its timeout leaves none running.
        os.chmod(tmp, 0o711)
        env = {**os.environ, SCRATCH_ENV: tmp}
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(HERE / "run.py"),
            "--section",
            name,
            "--section-out",
            str(out),
        ]
        command += ["--context", json.dumps(context)]
        if quick:
            command.append("--quick")
        started = time.monotonic()
        try:
            done = subprocess.run(
                command,
                cwd=str(ROOT),
                env=env,
                capture_output=True,
                text=True,
                timeout=SECTION_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {SECTION_TIMEOUT_S} s"}
        finally:
            stop_leftovers(Path(tmp))
        elapsed = time.monotonic() - started
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
        result: dict[str, Any] = json.loads(out.read_text())
        result["elapsed_s"] = elapsed
        return result


def _child(name: str, quick: bool, out: str, context: dict[str, Any]) -> None:
    module = importlib.import_module(SECTIONS[name])
    result = module.run(quick=quick, context=context)
    Path(out).write_text(json.dumps(result, default=str))


def main(argv: list[str] | None = None) -> int:
    """Run the sections, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 10 s outage")
    parser.add_argument("--out", default=str(HERE / "results.json"), help="JSON output file")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--section-out", help=argparse.SUPPRESS)
    parser.add_argument("--context", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:
        _child(args.section, args.quick, args.section_out, json.loads(args.context))
        return 0

    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    started = time.monotonic()
    load_start = _load()
    results: dict[str, Any] = {}
    context: dict[str, Any] = {}
    for name in SECTIONS:
        if name not in wanted:
            continue
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        results[name] = _run_section(name, args.quick, context)
        print(
            f"[bench] {name} done in {results[name].get('elapsed_s', 0):.1f} s"
            + (f": {results[name]['error']}" if "error" in results[name] else ""),
            file=sys.stderr,
            flush=True,
        )
        if name == "throughput" and "profiles" in results[name]:
            context["sustained_per_s"] = (
                results[name]["profiles"].get("tuned", {}).get("4", {}).get("sustained_per_s")
            )
    rows = build_rows(results)
    table = format_table(rows)
    real = results.get("real", {})
    if "rows" in real:
        headline = format_headline(real)
    elif "real" in results:
        headline = f"real path: not measured: {real.get('error', 'no result')}"
    else:
        headline = ""
    meta = {
        "mode": "quick" if args.quick else "full",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(time.monotonic() - started, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_start": load_start,
        "load_avg_end": _load(),
        "versions": _versions(),
    }
    if headline:
        print(headline + "\n")
    if rows:
        print(table)
    print(
        f"\n{meta['mode']} run, {meta['elapsed_s']} s, "
        f"Python {meta['python']}, "
        f"{meta['cpus']} CPUs, load average {meta['load_avg_start']} at the start, "
        f"{meta['load_avg_end']} at the end; JSON: {args.out}"
    )
    document = {
        "meta": meta,
        "headline": headline,
        "headline_rows": headline_rows(real) if "rows" in real else [],
        "table": table,
        "rows": rows,
        "raw": results,
    }
    Path(args.out).write_text(json.dumps(document, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
