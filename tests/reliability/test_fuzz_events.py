"""Bad input from the driver, fuzzed: nothing raises into the caller, nothing spoils a batch.

Every invalid event (wrong types, missing or oversized ids, non-UTF-8 where text belongs,
NaN/negative/infinite latencies, unknown enum values, hostile objects, things that are not
events at all) is counted as dropped `invalid_event`, and the valid events told around it are all
exported: the `LocalEndpoint` validates every body strictly, so one bad log in a batch would show
as a rejected request. Free text (an error's message) is never invalid: it is sanitised.
Garbage connection properties and environment values fall back to defaults, never raising.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from _support import (
    DRIVER,
    TOKEN,
    Identity,
    assert_balanced,
    bearer,
    events_of,
    fast_settings,
    wait_settled,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from actors.tools.local_endpoint import LocalEndpoint
from messages import events as ev
from messages.config import SETTINGS_TABLE, TelemetrySettings, env_var_name
from messages.enums import ExecutionResultFormat, OperationType, StatementType
from messages.records import DriverConnectionParams, SystemConfiguration

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- hostile values -----------------------------------------------------------------------------


class Hostile:
    """An object every dunder of which raises."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("hostile")

    __repr__ = __str__ = __eq__ = __hash__ = __bool__ = __lt__ = __le__ = _boom  # type: ignore
    __gt__ = __ge__ = __len__ = __iter__ = __float__ = __int__ = __index__ = _boom  # type: ignore
    __round__ = __format__ = __getattr__ = _boom  # type: ignore


class HostileStr(str):
    """A str whose hashing, comparing and string methods raise."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("hostile str")

    __hash__ = __eq__ = __ne__ = __lt__ = __len__ = __getitem__ = __str__ = __repr__ = _boom  # type: ignore
    strip = lower = encode = isascii = startswith = _boom  # type: ignore


class HostileFloat(float):
    """A float whose rounding, comparing and arithmetic raise."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("hostile float")

    __round__ = __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __eq__ = _boom  # type: ignore
    __hash__ = __repr__ = __str__ = __bool__ = _boom  # type: ignore


class HostileInt(int):
    """An int whose comparing, hashing and arithmetic raise."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("hostile int")

    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __hash__ = __add__ = __radd__ = _boom  # type: ignore
    __index__ = __repr__ = __str__ = __bool__ = __round__ = _boom  # type: ignore


HUGE = "x" * 100_000
NOT_UTF8 = b"\xff\xfe\xc3\x28 not utf-8"
LONE_SURROGATE = "id-\udcff-surrogate"

# Built fresh by `map`: hypothesis hashes the elements of `sampled_from`.
hostile = st.sampled_from(
    [Hostile, lambda: HostileStr("s"), lambda: HostileFloat(1.0), lambda: HostileInt(1)]
).map(lambda make: make())
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=20),
    st.just(NOT_UTF8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    hostile,
)
bad_ids = st.one_of(
    junk.filter(lambda v: not isinstance(v, str) or isinstance(v, HostileStr)),
    st.just(""),
    st.just(HUGE),
    st.just(LONE_SURROGATE),
    st.text(min_size=257, max_size=300),
)
bad_latencies = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -0.001, 1e13, True, "12"]),
    st.floats(max_value=-1e-9),
    st.integers(max_value=-1),
    hostile,
    st.binary(max_size=4),
)
bad_counts = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**31),
    st.sampled_from([True, 1.5, "3", math.nan]),
    hostile,
)
bad_enums = st.one_of(
    st.sampled_from(["QUERY", "BOGUS", 0, None, OperationType.LIST_TABLES, b"QUERY"]),
    hostile,
)
VALID_ID = "fine-id"


@st.composite
def invalid_events(draw: st.DrawFn) -> object:
    """An event with at least one field that makes it invalid, or something that is no event."""
    kind = draw(st.integers(0, 13))
    bid, lat, cnt, enum = (draw(s) for s in (bad_ids, bad_latencies, bad_counts, bad_enums))
    match kind:
        case 0:
            return ev.ConnectionOpened(session_id=bid)
        case 1:
            return ev.ConnectionOpened(session_id=VALID_ID, latency_ms=lat)
        case 2:
            return ev.StatementStarted(statement_id=bid, session_id=VALID_ID)
        case 3:
            return ev.StatementStarted(
                statement_id=VALID_ID, session_id=VALID_ID, statement_type=enum
            )
        case 4:
            return ev.OperationPolled(statement_id=VALID_ID, latency_ms=lat)
        case 5:
            return ev.ChunkDownloaded(statement_id=VALID_ID, chunk_index=cnt, latency_ms=1.0)
        case 6:
            return ev.StatementCompleted(
                statement_id=VALID_ID,
                execution_result=draw(st.one_of(bad_enums, st.just(StatementType.QUERY))),
            )
        case 7:
            return ev.StatementCompleted(statement_id=VALID_ID, operation_latency_ms=lat)
        case 8:
            return ev.ErrorOccurred(error_name=bid)
        case 9:
            return ev.ErrorOccurred(
                error_name="E", http_status=draw(st.one_of(bad_counts, st.just(42)))
            )
        case 10:  # text fields of a connection record: wrong type, oversized or not UTF-8
            text = draw(st.one_of(bad_ids.filter(lambda v: v != ""), st.just(b"pat")))
            return ev.ConnectionOpened(session_id=VALID_ID, auth_type=text)
        case 11:
            text = draw(st.one_of(bad_ids.filter(lambda v: v != ""), st.just(7)))
            params = DriverConnectionParams(http_path=text)
            config = SystemConfiguration(os_name=text)
            return ev.ConnectionOpened(
                session_id=VALID_ID,
                **draw(
                    st.sampled_from(
                        [{"connection_params": params}, {"system_configuration": config}]
                    )
                ),
            )
        case 12:  # an event whose required id was never set
            missing = object.__new__(draw(st.sampled_from([ev.StatementStarted, ev.ErrorOccurred])))
            return missing
        case _:  # not an event at all
            return draw(st.one_of(junk, st.text(max_size=5), st.tuples(junk, junk)))


class _Workload:
    """Valid sessions told around the garbage, with the logs they must produce."""

    def __init__(self, connection: actors.Connection) -> None:
        self.connection = connection
        self.ids = itertools.count()
        self.told = 0
        self.invalid = 0
        self.expected: dict[Identity, int] = {}

    def valid(self) -> None:
        """One statement with a chunk, then one lone error: two logs, five events."""
        n = next(self.ids)
        sid, stid = f"sess-{n}", f"stmt-{n}"
        statement = [
            ev.StatementStarted(statement_id=stid, session_id=sid),
            ev.ChunkDownloaded(statement_id=stid, chunk_index=0, latency_ms=3.5, size_bytes=10),
            ev.StatementCompleted(
                statement_id=stid,
                execution_result=ExecutionResultFormat.INLINE_JSON,
                operation_latency_ms=9.0,
            ),
        ]
        for event in statement:
            assert self.connection.tell(event) is True
        self.expected[("statement", sid, stid)] = len(statement)
        assert self.connection.tell(ev.ErrorOccurred(error_name="Oops", session_id=sid)) is True
        self.expected[("error", sid, None)] = 1
        self.told += len(statement) + 1

    def garbage(self, event: object) -> None:
        result = self.connection.tell(event)
        assert result is True, "a connected tell hands the event over, whatever it is"
        self.told += 1
        self.invalid += 1


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    """A strict local endpoint."""
    with LocalEndpoint(token=TOKEN, stop_timeout_s=2.0) as started:
        yield started


def _connect(endpoint: LocalEndpoint) -> actors.Connection:
    return actors.connect(
        endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings(batch_size=25)
    )


def _rejected(endpoint: LocalEndpoint) -> dict[int, int]:
    statuses = endpoint.stats()["requests"].get("/telemetry-ext", {})
    return {status: n for status, n in statuses.items() if status != 200}


@pytest.mark.slow
def test_invalid_events_are_counted_invalid_and_never_spoil_the_batch_they_join(
    endpoint: LocalEndpoint,
) -> None:
    workload = _Workload(_connect(endpoint))

    @FUZZ
    @given(garbage=st.lists(invalid_events(), min_size=1, max_size=4))
    def tell_garbage_between_valid_events(garbage: list[object]) -> None:
        workload.valid()
        for event in garbage:
            workload.garbage(event)
        workload.valid()

    tell_garbage_between_valid_events()

    host = workload.connection.host
    accounting = wait_settled(host, workload.told)
    assert_balanced(accounting, workload.told)
    assert accounting["dropped"] == {"invalid_event": workload.invalid}
    valid_events = workload.told - workload.invalid
    assert accounting["exported"] == valid_events
    assert events_of(endpoint.store.logs(), workload.expected) == valid_events
    assert _rejected(endpoint) == {}, "the endpoint rejected a body"


free_text = st.one_of(
    st.just(HUGE),
    st.just(NOT_UTF8),
    st.just(LONE_SURROGATE * 50),
    st.just("\x00\x01\x1b[31m\u202e" * 300),
    st.text(max_size=3000),
    st.binary(max_size=3000),
    hostile,
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
)


@pytest.mark.slow
def test_garbage_error_messages_are_exported_sanitised_and_capped(
    endpoint: LocalEndpoint,
) -> None:
    workload = _Workload(_connect(endpoint))
    sessions: list[str] = []

    @FUZZ
    @given(message=free_text)
    def tell_error_with(message: Any) -> None:
        sid = f"text-{next(workload.ids)}"
        sessions.append(sid)
        error = ev.ErrorOccurred(error_name="DriverError", message=message, session_id=sid)
        assert workload.connection.tell(error) is True
        workload.told += 1
        workload.expected[("error", sid, None)] = 1

    tell_error_with()

    accounting = wait_settled(workload.connection.host, workload.told)
    assert_balanced(accounting, workload.told)
    assert accounting["exported"] == workload.told and accounting["dropped"] == {}
    stored = endpoint.store.logs()
    assert events_of(stored, workload.expected) == workload.told
    for log in stored:
        trace = log["entry"]["sql_driver_log"]["error_info"].get("stack_trace", "")
        assert len(trace) <= 2048
        trace.encode("utf-8")  # valid UTF-8: no lone surrogate made it through
    assert _rejected(endpoint) == {}


# --- garbage configuration ----------------------------------------------------------------------


class HostileKey:
    """A hashable dict key whose comparisons and string forms raise."""

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:  # hypothesis prints failing examples with repr
        return "HostileKey()"

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("hostile key")

    __eq__ = __str__ = _boom  # type: ignore


class SlipperyKey(str):
    """A str key (hashable as usual) whose string methods raise."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("slippery key")

    strip = lower = upper = startswith = replace = _boom  # type: ignore


KEYS = [spec.key for spec in SETTINGS_TABLE]
key_spellings = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(lambda k: f"  {k.upper()} "),
    st.text(max_size=20).map(lambda t: "telemetry." + t),
    st.text(max_size=10),
    st.integers(),
    st.none(),
    st.binary(max_size=8),
    st.just(HostileKey()),
    st.just(SlipperyKey("telemetry.batch_size")),
)
garbage_values = st.one_of(
    junk,
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "1e3", "0x10", "-5", "NaN", "inf", "true ", "9" * 5000, "١٢", "\x00"]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
)
garbage_properties = st.dictionaries(key_spellings, garbage_values, max_size=6)
garbage_environ = st.dictionaries(
    st.sampled_from([env_var_name(k) for k in KEYS] + ["DATABRICKS_TELEMETRY_DISABLED"]),
    st.one_of(st.text(max_size=30), garbage_values),
    max_size=6,
)


@FUZZ
@given(properties=garbage_properties, environ=garbage_environ)
def test_garbage_properties_and_environment_fall_back_to_defaults_without_raising(
    properties: dict[Any, Any], environ: dict[str, Any]
) -> None:
    resolved = TelemetrySettings.from_sources(properties, environ)
    # whatever was picked is itself a valid explicit configuration
    rebuilt = TelemetrySettings(
        **{spec.field: getattr(resolved, spec.field) for spec in SETTINGS_TABLE}
    )
    assert rebuilt == resolved


# Keys that write files are left out: a fuzzed `telemetry.file_path` would create one.
SAFE_KEYS = [k for k in KEYS if k not in ("telemetry.sink", "telemetry.file_path")]


@pytest.mark.slow
def test_connect_with_garbage_properties_never_raises_and_tell_returns_a_bool(
    endpoint: LocalEndpoint, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in KEYS:
        monkeypatch.delenv(env_var_name(key), raising=False)
    properties = st.dictionaries(
        st.one_of(
            st.sampled_from(SAFE_KEYS),
            key_spellings.filter(lambda k: not (type(k) is str and k in KEYS)),
        ),
        garbage_values,
        max_size=5,
    )
    opened: list[actors.Connection] = []

    @settings(FUZZ, max_examples=30)
    @given(props=properties)
    def connect_with(props: dict[Any, Any]) -> None:
        props = {k: v for k, v in props.items() if not (isinstance(k, str) and "file" in k)}
        connection = actors.connect(endpoint.url, props, driver=DRIVER, auth=bearer(TOKEN))
        opened.append(connection)
        result = connection.tell(ev.ErrorOccurred(error_name="E", session_id="s"))
        assert isinstance(result, bool)
        assert isinstance(connection.enabled, bool)
        connection.close()
        assert connection.tell(ev.ErrorOccurred(error_name="E")) is False

    connect_with()
    assert opened
    json.dumps(actors.dump_state())  # the snapshot stays JSON-serialisable
    assert actors.shutdown(3.0) in (True, False)
