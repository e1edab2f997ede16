"""Privacy and security on the wire: what the endpoint receives, from whom, where, how much.

What may leave the process, decided here and checked against raw request bytes:

- Error messages are the only free text. They are masked (`messages.mask`): only message
  vocabulary and placeholders reach the wire, so secrets in them (bearer, basic, `dapi…` and JWT
  tokens, `key=value` secrets, URL user-info, paths, SQL literals and so parameter values
  inlined as literals) never do. Real drivers' messages are proven in `tests/privacy/`.
- Ids (session, statement), `error_name` (an exception class name), `auth_type` and
  `driver_connection_params.http_path` are exported verbatim by design: they identify, they are
  not free text, and drivers must not put secrets in them. `host_info` (the server address the
  driver gave) is never exported.
- A connection's token goes only in that connection's own `Authorization` header, to its own
  host, over TLS that is verified, never following a redirect.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _support import (
    DRIVER,
    TOKEN,
    RawRequest,
    RecordingServer,
    assert_balanced,
    bearer,
    fast_settings,
    healthy_answer,
    host_report,
    wait_settled,
    wait_until,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from actors._export import outbox
from actors._export.http import new_pool_manager
from actors._runtime.hosts import normalise_host
from actors.tools.local_endpoint import MAX_BODY_BYTES, Fault, LocalEndpoint
from messages import events as ev
from messages.records import DriverConnectionParams, HostInfo

Recording = Callable[..., RecordingServer]


@pytest.fixture
def recording_server() -> Iterator[Recording]:
    """Start `RecordingServer`s (options as its constructor's); all stop after the test."""
    started: list[RecordingServer] = []

    def start(**options: Any) -> RecordingServer:
        server = RecordingServer(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _logs_of(server: RecordingServer) -> list[dict[str, Any]]:
    return [log for request in server.posts() for log in request.proto_logs()]


# --- secrets in free text -----------------------------------------------------------------------

secret_chars = st.text(
    alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", min_size=12, max_size=24
)
hex32 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
b64url = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=16,
    max_size=40,
)


@st.composite
def secret_messages(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An error message with secrets in it, and the secrets that must not leave the process."""
    a, b = draw(secret_chars), draw(secret_chars)
    kind = draw(st.integers(0, 12))
    match kind:
        case 0:
            return f"Authorization: Bearer {a} was rejected", [a]
        case 1:
            return f"401 for bearer {a}", [a]
        case 2:
            basic = base64.b64encode(f"user{a}:{b}".encode()).decode()
            return f"proxy said Basic {basic} is wrong", [basic, a, b]
        case 3:
            pat = "dapi" + draw(hex32)
            return f"token {pat} expired", [pat]
        case 4:
            jwt = f"eyJ{draw(b64url)}.{draw(b64url)}.{draw(b64url)}"
            return f"oauth failed with id_token={jwt}; retry", [jwt, jwt.split(".")[1]]
        case 5:
            return f"cannot reach https://{a}:{b}@example.invalid/sql/1.0", [f"{a}:{b}", b]
        case 6:
            return f"File /home/{a}/projects/{b}/etl.py, line 3", [a, b]
        case 7:
            return f"cannot open C:\\Users\\{a}\\AppData\\{b}.json", [a, b]
        case 8:
            return f"[PARSE_SYNTAX_ERROR] near SELECT * FROM t WHERE ssn = '{a}'", [a]
        case 9:
            return f"INSERT INTO users VALUES ('{a}', 'x{b}') violates a constraint", [a, b]
        case 10:
            return f"connect failed: password={a}&user=bob; secret: {b}", [a, b]
        case 11:
            return f'{{"access_token": "{a}", "error": "invalid_grant"}}', [a]
        case _:
            return f"temp file /tmp/{a}/spill-{b}.arrow is full", [a, b]


@pytest.mark.slow
def test_no_secret_given_in_an_error_message_reaches_any_byte_the_endpoint_receives(
    recording_server: Recording,
) -> None:
    server = recording_server()
    connection = actors.connect(
        server.url, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings(force_enable=True)
    )
    secrets: list[str] = []
    ids = itertools.count()

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=secret_messages(), on_statement=st.booleans())
    def tell_error(case: tuple[str, list[str]], on_statement: bool) -> None:
        message, hidden = case
        secrets.extend(hidden)
        n = next(ids)
        sid, stid = f"s{n}", f"q{n}"
        if on_statement:  # held with its statement, exported in the statement's log
            assert connection.tell(ev.StatementStarted(statement_id=stid, session_id=sid))
            error = ev.ErrorOccurred(
                error_name="ServerError", message=message, statement_id=stid, http_status=503
            )
            assert connection.tell(error)
            assert connection.tell(ev.StatementCompleted(statement_id=stid))
        else:
            error = ev.ErrorOccurred(error_name="DriverError", message=message, session_id=sid)
            assert connection.tell(error)

    tell_error()
    assert actors.flush(5.0)
    assert secrets and server.posts()

    received = b"".join(request.raw for request in server.requests)
    leaked = sorted({s for s in secrets if s.encode() in received})
    assert not leaked, f"secrets on the wire: {leaked[:5]}"
    bodies = b"".join(request.body for request in server.posts())
    assert TOKEN.encode() not in bodies, "the bearer token went into a body"
    # the messages did go out, masked: every error log carries its (masked) stack trace
    traces = [log["entry"]["sql_driver_log"]["error_info"] for log in _logs_of(server)]
    assert len(traces) == next(ids) and all(t.get("stack_trace") for t in traces)


def test_host_info_is_never_exported_while_http_path_and_auth_type_go_verbatim(
    recording_server: Recording,
) -> None:
    server = recording_server()
    connection = actors.connect(
        server.url, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings(force_enable=True)
    )
    params = DriverConnectionParams(
        http_path="/sql/1.0/warehouses/abc",
        host_info=HostInfo(host_url="https://admin:hunter2@internal.example:8443", port=8443),
    )
    opened = ev.ConnectionOpened(session_id="s1", connection_params=params, auth_type="pat")
    assert connection.tell(opened)
    assert actors.flush(5.0)

    received = b"".join(request.raw for request in server.requests)
    assert b"internal.example" not in received and b"hunter2" not in received
    (log,) = _logs_of(server)
    entry = log["entry"]["sql_driver_log"]
    assert entry["driver_connection_params"] == {"http_path": "/sql/1.0/warehouses/abc"}
    assert entry["auth_type"] == "pat"


# --- whose credentials --------------------------------------------------------------------------


def test_each_request_carries_only_the_credentials_of_the_connections_whose_logs_it_holds(
    recording_server: Recording,
) -> None:
    server = recording_server()
    tokens = {"alice": "token-of-alice", "bob": "token-of-bob"}
    settings_ = fast_settings(force_enable=True, batch_size=7)
    connections = {
        name: actors.connect(server.url, driver=DRIVER, auth=bearer(token), settings=settings_)
        for name, token in tokens.items()
    }
    anonymous = actors.connect(server.url, driver=DRIVER, auth=None, settings=settings_)
    refused: list[str] = []

    def tenant(name: str, connection: actors.Connection) -> None:
        for i in range(40):  # interleaved with the other tenants' threads
            if not connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"{name}-{i}")):
                refused.append(name)

    threads = [threading.Thread(target=tenant, args=item) for item in connections.items()]
    threads.append(threading.Thread(target=tenant, args=("anon", anonymous)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    assert not any(t.is_alive() for t in threads) and refused == []
    wait_settled(anonymous.host, 120)

    authed = [r for r in server.posts() if r.path == "/telemetry-ext"]
    unauthed = [r for r in server.posts() if r.path == "/telemetry-unauth"]
    assert authed and unauthed
    for request in authed:
        owner = {
            log["entry"]["sql_driver_log"]["session_id"].split("-")[0]
            for log in request.proto_logs()
        }
        assert len(owner) == 1, f"one request mixes tenants: {owner}"
        assert request.headers["authorization"] == f"Bearer {tokens[owner.pop()]}"
    for request in unauthed:  # no credentials, and nothing that identifies a session
        assert "authorization" not in request.headers
        assert all(
            "session_id" not in log["entry"]["sql_driver_log"] for log in request.proto_logs()
        )
    assert sum(len(r.proto_logs()) for r in authed) == 80
    assert sum(len(r.proto_logs()) for r in unauthed) == 40


def test_a_connection_whose_token_rotates_sends_later_batches_with_the_new_token(
    recording_server: Recording,
) -> None:
    server = recording_server()
    current = {"token": "first-token"}
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=lambda: {"Authorization": f"Bearer {current['token']}"},
        settings=fast_settings(force_enable=True),
    )
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="before"))
    assert actors.flush(5.0)
    current["token"] = "rotated-token"
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="after"))
    assert actors.flush(5.0)

    sent = {
        r.proto_logs()[0]["entry"]["sql_driver_log"]["session_id"]: r.headers["authorization"]
        for r in server.posts()
    }
    assert sent == {"before": "Bearer first-token", "after": "Bearer rotated-token"}


# --- TLS ----------------------------------------------------------------------------------------


def test_the_pool_verifies_tls_certificates_by_default() -> None:
    pool = new_pool_manager()
    assert pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl CLI to make a self-signed certificate (cryptography absent)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_a_self_signed_https_endpoint_is_not_trusted_and_the_failed_export_is_counted(
    recording_server: Recording, self_signed: ssl.SSLContext
) -> None:
    server = recording_server(tls=self_signed)
    settings_ = fast_settings(force_enable=True, max_retries=1)
    connection = actors.connect(server.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings_)
    assert connection.host == server.host_port and server.url.startswith("https://")
    for i in range(3):
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))

    accounting = wait_settled(connection.host, 3)
    exporter = host_report(connection.host)["exporter"]
    assert accounting["exported"] == 0
    assert set(accounting["dropped"]) <= {"export_failed", "breaker_open"}
    assert sum(accounting["dropped"].values()) == 3
    assert "SSL" in (exporter["last_error"] or ""), exporter
    assert server.requests == [], "a request got through the TLS handshake"


# --- where requests go --------------------------------------------------------------------------


def _redirecting_to(target: RecordingServer, status: int) -> Callable[[RawRequest], Any]:
    def answer(request: RawRequest) -> tuple[int, dict[str, str], bytes]:
        return status, {"Location": target.url + request.path}, b"{}"

    return answer


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("transport", ["urllib3", "requests_session"])
def test_a_redirect_is_never_followed_and_the_export_is_counted_rejected(
    recording_server: Recording, status: int, transport: str
) -> None:
    elsewhere = recording_server()
    server = recording_server()
    server.answer = _redirecting_to(elsewhere, status)
    session = requests.Session() if transport == "requests_session" else None
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=bearer(TOKEN),
        settings=fast_settings(force_enable=True),
        session=session,
    )
    for i in range(3):
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))

    accounting = wait_settled(connection.host, 3)
    assert accounting["exported"] == 0 and set(accounting["dropped"]) <= {
        "rejected",
        "breaker_open",
    }
    assert server.posts(), "the export went to its own host"
    assert elsewhere.requests == [], "a redirect was followed"
    if session is not None:
        session.close()


def test_a_redirected_feature_flag_fetch_is_not_followed_and_means_off(
    recording_server: Recording,
) -> None:
    elsewhere = recording_server()
    server = recording_server()
    server.answer = _redirecting_to(elsewhere, 302)
    connection = actors.connect(
        server.url, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings()
    )
    wait_until(lambda: connection.enabled is False, what="the flag to be decided off")
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="s"))

    accounting = wait_settled(connection.host, 1)
    assert accounting["dropped"] == {"flag_off": 1}
    assert [r.method for r in server.requests] == ["GET"]
    assert elsewhere.requests == []


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("HTTPS://User:Secret@Example.COM:443/sql/1.0/warehouses/x?o=1#frag", "example.com"),
        ("example.com.", "example.com"),
        ("https://example.com:8443/", "example.com:8443"),
        ("user@example.com/path?token=abc", "example.com"),
        ("http://[::1]:8080/x", "[::1]:8080"),
    ],
)
def test_a_host_with_path_user_info_or_query_normalises_to_bare_host_and_port(
    given: str, key: str
) -> None:
    assert normalise_host(given).key == key


def test_exports_go_to_the_bare_host_whatever_the_driver_gave_in_the_url(
    recording_server: Recording,
) -> None:
    server = recording_server()
    messy = f"http://someone:url-password@{server.host_port}/sql/1.0/warehouses/x?token=qs-token#f"
    connection = actors.connect(messy, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings())
    assert connection.host == server.host_port
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="s"))
    accounting = wait_settled(connection.host, 1)

    assert accounting["exported"] == 1, accounting
    assert {r.path.split("/")[1] for r in server.requests} == {"api", "telemetry-ext"}
    # On a loaded machine a reply slower than the short read timeout is retried: every attempt
    # must go to the bare host too, and all of them carry the one log that was told.
    posts = server.posts()
    assert posts and all(r.path == "/telemetry-ext" for r in posts)
    assert len({json.dumps(log, sort_keys=True) for log in _logs_of(server)}) == 1
    received = b"".join(r.raw for r in server.requests)
    for secret in (b"url-password", b"someone", b"qs-token", b"warehouses"):
        assert secret not in received
    assert all(r.headers["host"] == server.host_port for r in server.requests)


# --- bounds -------------------------------------------------------------------------------------


def test_batches_that_wait_together_share_bodies_under_the_cap_and_each_log_goes_once(
    recording_server: Recording,
) -> None:
    server = recording_server()
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=bearer(TOKEN),
        settings=fast_settings(force_enable=True, batch_size=7, flush_interval_ms=1000),
    )
    for i in range(60):
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
    assert actors.flush(5.0)

    sessions = [
        log["entry"]["sql_driver_log"]["session_id"]
        for r in server.posts()
        for log in r.proto_logs()
    ]
    assert sorted(sessions) == sorted(f"s{i}" for i in range(60))
    assert all(len(r.body) <= MAX_BODY_BYTES for r in server.posts())


# Each char at its costliest on the wire once masked: quotes, control characters and emoji do not
# survive masking, backslashes do (and are escaped twice, a protoLog being a JSON string).
WORST_TEXT = "\\" * 4000


def test_a_full_batch_of_worst_case_logs_goes_out_in_bodies_under_the_endpoints_limit(
    recording_server: Recording,
) -> None:
    # 100 logs (the default batch size) of the largest text the aggregator accepts, all of it
    # characters that escaping blows up, would make a 2 MB body: it goes out in chunks instead.
    server = recording_server()
    batch_size = actors.TelemetrySettings().batch_size
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=bearer(TOKEN),
        settings=fast_settings(force_enable=True, flush_interval_ms=60_000),
    )
    long_id = ('"\\\x01' * 100)[:250]  # the longest id the aggregator accepts, all escapes
    for i in range(batch_size):
        error = ev.ErrorOccurred(
            error_name="E" * 256,
            message=WORST_TEXT + "x" * 100_000,
            session_id=f"{i:03}{long_id}",
            statement_id=f"{i:03}{long_id}",
        )
        assert connection.tell(error)
    assert actors.flush(5.0)

    posts = server.posts()
    assert len(posts) > 1, "the worst case must not fit one body"
    assert sum(len(r.proto_logs()) for r in posts) == batch_size
    for request in posts:
        assert len(request.body) < MAX_BODY_BYTES, len(request.body)
        for log in request.proto_logs():
            assert len(log["entry"]["sql_driver_log"]["error_info"]["stack_trace"]) <= 2048
    accounting = wait_settled(connection.host, batch_size)
    assert accounting["exported"] == batch_size and accounting["dropped"] == {}


def test_a_chunk_refused_mid_batch_drops_the_rest_and_the_accounts_say_exactly_which(
    recording_server: Recording,
) -> None:
    # the second chunk of a chunked batch is refused (400): the first chunk's logs are
    # exported, the rest of the batch is rejected, event for event
    server = recording_server()
    posts_seen = itertools.count()

    def answer(request: RawRequest) -> tuple[int, dict[str, str], bytes]:
        if request.method == "POST" and next(posts_seen) == 1:
            return 400, {}, b"{}"
        return healthy_answer(request)

    server.answer = answer
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=bearer(TOKEN),
        settings=fast_settings(force_enable=True, flush_interval_ms=60_000),
    )
    long_id = ('"\\\x01' * 100)[:250]
    for i in range(100):
        error = ev.ErrorOccurred(error_name="E", message=WORST_TEXT, session_id=f"{i:03}{long_id}")
        assert connection.tell(error)
    assert actors.flush(5.0)

    accounting = wait_settled(connection.host, 100)
    stored = sum(len(r.proto_logs()) for r in server.posts()[:1] + server.posts()[2:])
    assert accounting["exported"] == stored
    assert accounting["dropped"] == {"rejected": 100 - stored}
    assert 0 < stored < 100


def test_a_log_too_big_for_any_body_is_dropped_as_too_large_and_its_batch_still_goes(
    recording_server: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = recording_server()
    settings_ = fast_settings(force_enable=True, flush_interval_ms=60_000)
    small = actors.connect(server.url, driver=DRIVER, auth=None, settings=settings_)
    assert small.tell(ev.ErrorOccurred(error_name="E", session_id="small"))
    assert actors.flush(5.0)
    wait_settled(small.host, 1)
    # DriverInfo caps names at 128 characters, so the body limit is lowered instead: one small
    # log fits, the big driver's log (its name twice, ~220 bytes more) fits no body.
    limit = len(server.posts()[0].body) + 120
    monkeypatch.setattr(outbox, "MAX_BODY_BYTES", limit)
    huge = actors.DriverInfo(name="D" * 128, version="1")
    big = actors.connect(server.url, driver=huge, auth=None, settings=settings_)
    assert big.tell(ev.ErrorOccurred(error_name="E", session_id="big"))
    for i in range(3):
        assert small.tell(ev.ErrorOccurred(error_name="E", session_id=f"small{i}"))
    assert actors.flush(5.0)

    accounting = wait_settled(small.host, 5)
    assert accounting["dropped"] == {"too_large": 1}
    assert accounting["exported"] == 4
    assert all(len(r.body) <= limit for r in server.posts())


@pytest.fixture
def hanging_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(token=TOKEN, fault=Fault(mode="hang"), stop_timeout_s=2.0) as started:
        yield started


def test_buffers_stay_within_their_bounds_while_the_endpoint_hangs_and_overflow_is_counted(
    hanging_endpoint: LocalEndpoint,
) -> None:
    bounds = {"max_queued_logs": 20, "max_pending_batches": 3, "max_pending_statements": 10}
    settings_ = fast_settings(
        force_enable=True, batch_size=5, breaker_enabled=False, read_timeout_ms=300, **bounds
    )
    connection = actors.connect(
        hanging_endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings_
    )
    host = connection.host
    told = 0
    worst = {"queued_logs": 0, "open_statements": 0, "exporter_batches": 0}
    pace = threading.Event()
    for round_ in range(10):
        for i in range(30):  # far more than any bound, each round
            n = f"{round_}.{i}"
            assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{n}"))
            assert connection.tell(ev.StatementStarted(statement_id=f"q{n}", session_id="s"))
            told += 2
        # a short timeout: the exporter is often busy in a hanging request and cannot answer
        state = actors.dump_state(0.1)["hosts"][host]
        aggregator, exporter = state["aggregator"], state["exporter"]
        worst["queued_logs"] = max(worst["queued_logs"], aggregator["queued_logs"])
        worst["open_statements"] = max(worst["open_statements"], aggregator["open_statements"])
        if "error" not in exporter:
            batches = exporter["queued_batches"] + exporter["retrying_batches"]
            worst["exporter_batches"] = max(worst["exporter_batches"], batches)
        pace.wait(0.03)
    connection.close()
    actors.shutdown(3.0)

    assert worst["queued_logs"] <= bounds["max_queued_logs"], worst
    assert worst["open_statements"] <= bounds["max_pending_statements"], worst
    assert worst["exporter_batches"] <= bounds["max_pending_batches"], worst
    accounting = host_report(host)["accounting"]
    assert_balanced(accounting, told)
    assert accounting["dropped"].get("queue_full", 0) > 0, accounting
    assert accounting["exported"] == 0


def test_batches_handed_to_the_exporter_are_bounded_while_the_endpoint_hangs(
    hanging_endpoint: LocalEndpoint,
) -> None:
    # pykka inboxes are unbounded: batches the exporter cannot send must wait in the
    # aggregator's bounded queue, not pile up in the exporter's inbox
    settings_ = fast_settings(
        force_enable=True,
        flush_interval_ms=20,
        breaker_enabled=False,
        max_pending_batches=3,
        read_timeout_ms=300,
    )
    connection = actors.connect(
        hanging_endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings_
    )
    pace = threading.Event()
    for i in range(40):  # one log per flush interval, while each attempt hangs 300 ms
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
        pace.wait(0.02)
    in_flight = actors.dump_state(0.1)["hosts"][connection.host]["aggregator"]["in_flight_batches"]
    # the exporter's own queue plus the one it is sending
    assert in_flight <= settings_.max_pending_batches + 1, in_flight


def test_request_bodies_are_json_the_endpoint_accepts(recording_server: Recording) -> None:
    # sanity for the recording server: what it records is what was sent
    server = recording_server()
    connection = actors.connect(
        server.url, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings(force_enable=True)
    )
    assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="s"))
    assert actors.flush(5.0)
    (request,) = server.posts()
    body = json.loads(request.body)
    assert body["items"] == [] and len(body["protoLogs"]) == 1
    assert request.headers["content-type"] == "application/json"
    assert int(request.headers["content-length"]) == len(request.body)
