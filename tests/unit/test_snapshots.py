"""State records that cross actors: typed on the way, JSON only in `dump_state()`."""

from __future__ import annotations

import json

import attrs
import pytest

from messages.accounts import Accounts
from messages.snapshots import BreakerSnapshot, BreakerState, TreeFinal, to_json


def test_a_breaker_snapshot_becomes_the_json_object_dump_state_has_always_shown() -> None:
    snap = BreakerSnapshot(
        state=BreakerState.OPEN,
        consecutive_failures=5,
        opened_for_s=1.5,
        reopens_in_s=28.5,
        transitions={"CLOSED->OPEN": 1},  # type: ignore[arg-type]
    )
    assert snap.transitions == (("CLOSED->OPEN", 1),)
    assert to_json(snap) == {
        "state": "OPEN",
        "consecutive_failures": 5,
        "half_open_successes": 0,
        "probe_outstanding": False,
        "opened_for_s": 1.5,
        "reopens_in_s": 28.5,
        "transitions": {"CLOSED->OPEN": 1},
    }


def test_a_tree_that_timed_out_says_so_and_is_cut_short() -> None:
    final = TreeFinal(generation=4)
    assert final.timed_out and final.cut_short
    assert to_json(final) == {"generation": 4, "timed_out": True}


@pytest.mark.parametrize(
    ("dropped", "cut_short"),
    [({}, False), ({"flag_off": 2}, False), ({"shutdown_timeout": 1}, True)],
)
def test_a_tree_with_final_accounts_is_cut_short_only_by_deadline_drops(
    dropped: dict[str, int], cut_short: bool
) -> None:
    accounts = Accounts.of(
        received=3, exported=3 - sum(dropped.values()), dropped=dropped, pending=0
    )
    final = TreeFinal(generation=2, snapshot={"accounts": accounts, "logs_emitted": 1})
    assert not final.timed_out
    assert final.accounts == accounts
    assert final.cut_short is cut_short
    assert to_json(final) == {"generation": 2, **accounts.as_json(), "logs_emitted": 1}


def test_to_json_turns_nested_records_tuples_and_read_only_mappings_into_plain_json() -> None:
    breaker = BreakerSnapshot(state=BreakerState.CLOSED)
    final = TreeFinal(generation=1, snapshot={"exporter": {"breaker": breaker}}, breaker=breaker)
    report = to_json({"finished": (final,), "hosts": {"h": {"live": True}}})
    assert json.loads(json.dumps(report)) == report
    assert report["finished"][0]["exporter"]["breaker"]["state"] == "CLOSED"


def test_renaming_is_caught_because_records_refuse_unknown_fields() -> None:
    with pytest.raises(TypeError):
        BreakerSnapshot(state=BreakerState.OPEN, failures=3)  # type: ignore[call-arg]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        TreeFinal(generation=1).generation = 2  # type: ignore[misc]
