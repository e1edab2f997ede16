"""Hypothesis fills the corpus's real messages with random values; none of them leaves.

The messages come from the real drivers (sqlite3, and psycopg against PostgreSQL), each planted
value in them made a slot. Hypothesis fills the slots with random values wrapped in hostile
characters (quotes of every kind, parentheses, brackets, ``=``, colons, newlines, emoji) and tells
each filled message through the whole pipeline to the real endpoint: no value's random core is in
any byte it received, nor in any exported text. With plain values, the same template masks to the
same text whatever is planted (errors still group).
"""

from __future__ import annotations

import contextlib
import random
import re
import sqlite3
from typing import Any

import pytest
from _wire import TOKEN, Wire
from corpus import Plant, postgres_cases, sqlite_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import require_module
from waiting import poll_until

import actors
from messages import events as ev
from messages._vocabulary import CONTENT_WORDS, FUNCTION_WORDS
from messages.mask import mask_text

FLUSH_TIMEOUT_S = 10.0
SLOT = re.compile(r"\x00(\d+)\x00")

cores = st.from_regex(r"[g-z][a-z0-9]{4,10}[0-9]", fullmatch=True).filter(
    lambda core: core not in CONTENT_WORDS | FUNCTION_WORDS
)
decoration = st.text(alphabet=" '\"`()=:,.-_/\\@\n\t\u00e9\U0001f600[]{}<>;$", max_size=3)


def templates_of(plant: Plant) -> list[tuple[str, str]]:
    """(class name, message with each planted value made a numbered slot) of each failure."""
    values = sorted(set(plant.values), key=len, reverse=True)
    found = []
    for name, message in plant.messages:
        for index, value in enumerate(values):
            message = message.replace(value, f"\x00{index}\x00")
        if SLOT.search(message):
            found.append((name, message))
    return found


def collect(driver: str, request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    """Run the corpus once on an uninstrumented connection of `driver`; return its templates."""
    plant = Plant(random.Random(random.SystemRandom().getrandbits(64)))
    if driver == "sqlite3":
        with contextlib.closing(sqlite3.connect(":memory:")) as conn:
            sqlite_cases(_Cursor(conn.cursor()), plant, (sqlite3.Error,))
    else:
        psycopg = require_module("psycopg", "psycopg[binary]")
        postgres = request.getfixturevalue("postgres")
        with psycopg.connect(**postgres.kwargs(), autocommit=True) as conn:
            postgres_cases(_Cursor(conn.cursor()), plant, (psycopg.Error,))
    return templates_of(plant)


class _Cursor:
    """A raw cursor with the attribute the corpus reads of an instrumented one."""

    telemetry_statement_id = ""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str) -> Any:
        return self.raw.execute(sql)


def fill(template: str, values: list[str]) -> str:
    return SLOT.sub(lambda m: values[int(m.group(1)) % len(values)], template)


@pytest.mark.parametrize("driver", ["sqlite3", "psycopg"])
def test_corpus_templates_filled_with_random_values_leave_no_value_on_the_wire(
    driver: str, request: pytest.FixtureRequest, wire: Wire
) -> None:
    templates = collect(driver, request)
    assert len(templates) >= 10, templates
    settings_ = actors.TelemetrySettings(
        force_enable=True, flush_interval_ms=50, batch_size=500, max_queued_logs=10_000
    )
    connection = actors.connect(
        wire.url,
        driver=actors.DriverInfo(name="corpus", version="1"),
        auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
        settings=settings_,
    )
    planted: list[str] = []
    told = 0

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.lists(st.tuples(decoration, cores, decoration), min_size=1, max_size=6),
        st.lists(cores, min_size=2, max_size=2, unique=True),
    )
    def tell(values: list[tuple[str, str, str]], plain: list[str]) -> None:
        nonlocal told
        planted.extend(core for _, core, _ in values)
        hostile = ["".join(parts) for parts in values]
        for name, template in templates:
            assert connection.tell(
                ev.ErrorOccurred(error_name=name, message=fill(template, hostile))
            )
            told += 1
            first, second = (mask_text(fill(template, [value])) for value in plain)
            assert first == second, template

    tell()
    assert actors.flush(FLUSH_TIMEOUT_S)
    poll_until(lambda: len(wire.error_infos()) >= told, FLUSH_TIMEOUT_S, f"{told} error logs")
    received = wire.received()
    exported = "\n".join(info.get("stack_trace", "") for info in wire.error_infos())
    leaked = sorted({core for core in planted if core.encode() in received or core in exported})
    assert not leaked, f"planted values on the wire: {leaked[:10]}"
