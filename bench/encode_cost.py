"""Encoding one frontend log to JSON: the cattrs converter and `json` (the wire's definition)
beside the generated encoder (`messages.encode`, what the wire uses), on the same statement
logs, interleaved, one thread, no actors.

The logs are what the aggregator builds for a statement of five events (as in `statement_cpu`'s
component rows). Before timing, every log is encoded both ways and the strings compared: a
difference fails the section rather than report a speed of wrong output.
"""

from __future__ import annotations

import time
from typing import Any

from _common import ids, quiet_gc
from statement_cpu import statement_context, statement_logs


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """µs per log for both encoders, per repeat."""
    from messages import encode, wire

    def converter_encode(log: Any) -> str:
        return wire._dumps(wire.converter.unstructure(log))

    repeats = 5 if quick else 9
    logs = statement_logs(statement_context(), ids(2000))
    mismatches = sum(converter_encode(g) != encode.encode_frontend_log(g) for g in logs)
    if mismatches:
        raise RuntimeError(f"{mismatches} logs encode differently: not measured")
    runs = []
    for _ in range(repeats):
        result = {}
        for name, fn in (
            ("converter_us", converter_encode),
            ("generated_us", encode.encode_frontend_log),
        ):
            with quiet_gc():
                t0 = time.perf_counter()
                for log in logs:
                    fn(log)
                result[name] = (time.perf_counter() - t0) / len(logs) * 1e6
        result["ratio"] = result["generated_us"] / result["converter_us"]
        runs.append(result)
    size = sum(len(wire.encode_frontend_log(g).encode()) for g in logs) / len(logs)
    return {"logs": len(logs), "log_bytes": size, "runs": runs}
