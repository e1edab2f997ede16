"""Child program for test_log_hygiene: a fault matrix, under the host's logging configuration.

Spec: `mode` is `debug` (the host calls `logging.basicConfig(level=DEBUG)` first; every record
is also recorded) or `default` (the host configures nothing); `targets` is a list of
`{name, url, auth, properties}`, one endpoint (or closed port) per fault. The process snapshots
its global hooks, signal handlers and loggers before importing the library, after importing it,
after the workload and after `actors.shutdown()`, and reports all of it. Nothing is printed.
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import sys
import threading
import warnings
from typing import Any

MAX_RECORDS = 20_000


class Recorder(logging.Handler):
    """Keeps (logger, level, message) of every record the host's root logger sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < MAX_RECORDS:
            self.records.append(
                {
                    "logger": record.name,
                    "levelno": record.levelno,
                    "level": record.levelname,
                    "message": record.getMessage()[:300],
                    "thread": record.threadName,
                }
            )


def snapshot() -> dict[str, Any]:
    """Process-global state a library must leave alone (as comparable reprs)."""
    manager = logging.Logger.manager
    loggers = {"<root>": logging.getLogger()}
    loggers.update(
        (n, lg) for n, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)
    )
    signals = {}
    for number in sorted(signal.valid_signals()):
        try:
            handler = signal.getsignal(number)
        except (OSError, ValueError):
            continue
        signals[str(number)] = repr(handler)
    return {
        "hooks": {
            "sys.excepthook": repr(sys.excepthook),
            "threading.excepthook": repr(threading.excepthook),
            "sys.unraisablehook": repr(sys.unraisablehook),
            "sys.displayhook": repr(sys.displayhook),
            "sys.breakpointhook": repr(sys.breakpointhook),
            "sys.gettrace": repr(sys.gettrace()),
            "sys.getprofile": repr(sys.getprofile()),
            "threading.gettrace": repr(threading.gettrace()),
            "sys.stdout": repr(sys.stdout),
            "sys.stderr": repr(sys.stderr),
            "logging.lastResort": repr(logging.lastResort),
            "logging.raiseExceptions": repr(logging.raiseExceptions),
            "logging.disable": repr(manager.disable),
            "logging.getLoggerClass": repr(logging.getLoggerClass()),
            "logging.getLogRecordFactory": repr(logging.getLogRecordFactory()),
            "warnings.filters": repr(warnings.filters),
            "warnings.showwarning": repr(warnings.showwarning),
        },
        "signals": signals,
        "loggers": {
            name: {
                "level": lg.level,
                "propagate": lg.propagate,
                "disabled": lg.disabled,
                "handlers": [type(h).__name__ for h in lg.handlers],
            }
            for name, lg in loggers.items()
        },
        "atexit_callbacks": atexit._ncallbacks(),
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    recorder = Recorder()
    if spec["mode"] == "debug":
        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger().addHandler(recorder)
    snapshots = {"before_import": snapshot()}

    from child_common import DRIVER, bearer, tell_session, wait_until, write_report

    import actors

    snapshots["after_import"] = snapshot()

    def broken_auth() -> dict[str, str]:
        raise RuntimeError("the driver's token refresh failed")

    connections = {}
    told = {}
    for target in spec["targets"]:
        name = target["name"]
        properties = {f"telemetry.{k}": v for k, v in target["properties"].items()}
        # Bad values and unknown keys from the host fall back quietly (with a DEBUG record).
        properties.update({"telemetry.batch_size": "lots", "telemetry.no_such_knob": "1"})
        auth = broken_auth if target["auth"] == "broken" else bearer(target["auth"])
        told[name] = 0
        for cycle in range(target["churn"]):  # each close starts a drain of its own tree
            with actors.connect(target["url"], properties, driver=DRIVER, auth=auth) as churned:
                told[name] += tell_session(churned, f"{name}-{cycle}-session")
        connections[name] = actors.connect(target["url"], properties, driver=DRIVER, auth=auth)
    for name, connection in connections.items():
        told[name] += tell_session(connection, f"{name}-session")
        told[name] += int(connection.tell("not an event"))

    def settled() -> dict[str, Any] | None:
        hosts = actors.dump_state(1.0)["hosts"]
        states = {name: hosts.get(c.host, {}) for name, c in connections.items()}
        for name, state in states.items():
            account = state.get("accounting") or {}
            if account.get("told") != told[name] or account.get("pending") != 0:
                return None
        return states

    states = wait_until(settled, "every host's events to settle", timeout_s=15.0)
    snapshots["after_workload"] = snapshot()
    for connection in connections.values():
        connection.close()
    clean = actors.shutdown(5.0)
    snapshots["after_shutdown"] = snapshot()
    write_report(
        spec,
        clean=clean,
        told=told,
        outcomes={
            name: {
                "responses": state["exporter"]["responses"],
                "dropped": state["accounting"]["dropped"],
                "exported": state["accounting"]["exported"],
                "flag": state["feature_flags"]["source"],
                "handler_errors": sum(
                    state[actor].get("handler_errors", 0)
                    for actor in ("supervisor", "feature_flags", "aggregator", "exporter")
                ),
            }
            for name, state in states.items()
        },
        records=recorder.records,
        snapshots=snapshots,
    )


if __name__ == "__main__":
    main()
