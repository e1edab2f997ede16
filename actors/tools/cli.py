"""The `driver-telemetry` command: `demo` (default), `example`, `serve`, `show`."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from actors.tools.local_endpoint import add_commands

__all__ = ["main"]


def _example(_: argparse.Namespace) -> int:
    """Print the `/telemetry-ext` body a sample connection and statement would send."""
    from actors._aggregate.statements import StatementAggregate, build_log
    from messages import events as ev
    from messages.commands import ConnectionContext
    from messages.privacy import LogKind
    from messages.records import SqlDriverLog
    from messages.sysconfig import DriverInfo, system_configuration
    from messages.wire import encode_frontend_log, encode_request

    driver = DriverInfo(name="MyDriver", version="1.2.3")
    ctx = ConnectionContext(
        connection_id=1,
        host="example.cloud.databricks.com",
        auth=None,
        user_agent=driver.user_agent,
        system_configuration=system_configuration(driver),
        workspace_id=1234567890123456,
    )
    session = str(uuid.uuid4())
    connection = SqlDriverLog(
        session_id=session, system_configuration=ctx.system_configuration, auth_type="pat"
    )
    st = StatementAggregate(ctx, str(uuid.uuid4()))
    st.session_id = session
    st.add_chunk(ev.ChunkDownloaded(statement_id=st.statement_id, chunk_index=0, latency_ms=12))
    st.done = ev.StatementCompleted(statement_id=st.statement_id, operation_latency_ms=42)
    kind, statement = st.driver_log()
    now_ms = 1755000000123
    logs = [
        encode_frontend_log(build_log(ctx, LogKind.CONNECTION, connection, now_ms)),
        encode_frontend_log(build_log(ctx, kind, statement, now_ms)),
    ]
    body = json.loads(encode_request(logs, now_ms + 1000))
    body["protoLogs"] = [json.loads(log) for log in body["protoLogs"]]
    print("POST /telemetry-ext  (protoLogs are JSON strings on the wire; decoded here)")
    print(json.dumps(body, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m actors`."""
    from actors.tools.demo import add_demo_arguments, run_demo

    parser = argparse.ArgumentParser(prog="driver-telemetry", description=__doc__)
    add_demo_arguments(parser)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="threaded sqlite3 workload against local endpoints")
    add_demo_arguments(demo)
    sub.add_parser("example", help="print a sample /telemetry-ext body")
    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "example":
        return _example(args)
    if args.command in (None, "demo"):
        return run_demo(args)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
