"""What the reliability child programs share: the spec, a session workload, polling, the report.

Children never print: a failure raises (and the traceback on stderr fails the test), and facts
go to the JSON report file named by the spec.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import actors
from messages import events as ev

DRIVER = actors.DriverInfo(name="ReliabilityChild", version="1.0.0")


def load_spec() -> dict[str, Any]:
    """The child's one argument: a JSON object."""
    return dict(json.loads(sys.argv[1]))


def write_report(spec: Mapping[str, Any], **facts: Any) -> None:
    """Write the report (replacing an earlier one)."""
    with open(spec["report"], "w", encoding="utf-8") as out:
        json.dump(facts, out)


def bearer(token: str | None) -> Callable[[], dict[str, str]] | None:
    """An auth provider for `token` (None: an unauthenticated connection)."""
    if token is None:
        return None
    return lambda: {"Authorization": f"Bearer {token}"}


def connect(spec: Mapping[str, Any], **properties: Any) -> actors.Connection:
    """`actors.connect` to the spec's URL with `telemetry.*` properties, as a driver would."""
    props = {f"telemetry.{key}": value for key, value in spec.get("properties", {}).items()}
    props.update({f"telemetry.{key}": value for key, value in properties.items()})
    return actors.connect(spec["url"], props, driver=DRIVER, auth=bearer(spec.get("token")))


def connect_ready(spec: Mapping[str, Any], **properties: Any) -> actors.Connection:
    """`connect`, then wait until the host's flag is on, so exported logs are not held back."""
    connection = connect(spec, **properties)
    wait_flag_on(connection)
    return connection


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = 10.0) -> Any:
    """Poll `condition` until truthy (returned); raise at the deadline."""
    deadline_s = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline_s:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.01)


def host_state(host: str, timeout_s: float = 0.5) -> dict[str, Any]:
    """`dump_state()` of one host ({} when unknown)."""
    return dict(actors.dump_state(timeout_s)["hosts"].get(host, {}))


def wait_flag_on(connection: actors.Connection) -> None:
    """Wait until the host's feature flag is known to be on (so exported logs are not held)."""
    wait_until(
        lambda: host_state(connection.host).get("feature_flags", {}).get("enabled") is True,
        "the feature flag to be on",
    )


def tell_statement(connection: actors.Connection, session_id: str, name: str) -> int:
    """Tell one statement's events (one statement log); return how many events were told."""
    statement_id = f"{session_id}/{name}"
    told = [
        connection.tell(ev.StatementStarted(statement_id=statement_id, session_id=session_id)),
        connection.tell(ev.OperationPolled(statement_id=statement_id, latency_ms=2.0)),
        connection.tell(ev.StatementCompleted(statement_id=statement_id, operation_latency_ms=9)),
    ]
    if not all(told):
        raise RuntimeError(f"tell refused an event of {statement_id}: {told}")
    return len(told)


def tell_session(connection: actors.Connection, session_id: str) -> int:
    """Tell a whole session: open, one statement, close (three logs); return events told."""
    told = int(connection.tell(ev.ConnectionOpened(session_id=session_id, latency_ms=3.0)))
    told += tell_statement(connection, session_id, "q1")
    told += int(connection.tell(ev.ConnectionClosed(session_id=session_id, latency_ms=1.0)))
    if told != 5:
        raise RuntimeError(f"tell refused events of session {session_id}")
    return told


def tree_threads() -> list[str]:
    """Names of the live telemetry threads (registry, tree actors and timers)."""
    prefixes = (
        "RegistryActor-",
        "HostSupervisor-",
        "FeatureFlagActor-",
        "AggregatorActor-",
        "ExporterActor-",
        "telemetry-timer-",
    )
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefixes))
