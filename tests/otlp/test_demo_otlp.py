"""`driver-telemetry demo --sink otlp`: the same accounting, checked at the OTLP side."""

from __future__ import annotations

import argparse
import io
import json
import os

import pytest

from actors.tools import otlp_receiver
from actors.tools.demo import add_demo_arguments, run_demo


def demo_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    fixed = ["--sink", "otlp", "--duration", "0.5", "--threads", "2", "--hosts", "1"]
    return parser.parse_args([*fixed, "--db", ":memory:", "--json", "--statement-ms", "0", *extra])


@pytest.mark.parametrize("via", ["collector", "receiver"])
def test_the_demo_accounts_for_every_log_at_the_otlp_side(
    via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if via == "receiver":  # no collector installed: the loopback receiver takes the logs
        monkeypatch.setattr(otlp_receiver, "start_collector", lambda forward_to: None)
    else:
        probe = otlp_receiver.OtlpReceiver()
        started = otlp_receiver.start_collector(probe.url)
        probe.close()
        if started is None:
            message = "the rotel collector is not installed or does not start here"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        started[1].terminate()
        started[1].wait(timeout=5.0)
    out = io.StringIO()

    status = run_demo(demo_args(), out=out, err=io.StringIO())

    report = json.loads(out.getvalue())
    assert status == 0, report["otlp"]
    otlp = report["otlp"]
    assert otlp["via"] == ("rotel collector" if via == "collector" else "loopback OTLP receiver")
    assert otlp["received_matches_accounting"]
    assert otlp["log_records_received"] == otlp["exported_logs"] > 0
    assert otlp["requests"]["/v1/logs"] >= 1 and otlp["requests"]["/v1/metrics"] >= 1
