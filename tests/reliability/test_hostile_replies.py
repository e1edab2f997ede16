"""Hostile replies settle: whatever a server answers, the batch settles and the flag is decided.

A real loopback server answers with bytes chosen per test: valid JSON nested 100,000 deep, an
endless chunked body, a gzip bomb. Bodies are read with a cap on every transport, decompression
included, so none of them can hang an exporter, raise out of it or flood the process's memory.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import urllib3
from _support import DRIVER, TOKEN, bearer, fast_settings, wait_until

import actors
from actors._export.http import SessionTransport, Urllib3Transport
from actors.tools.local_endpoint import FLAG_NAME
from messages import events as ev

DEEP = ("[" * 100_000 + "]" * 100_000).encode()
FLAG_ON = json.dumps({"flags": [{"name": FLAG_NAME, "value": "true"}], "ttl_seconds": 900})
CAP_BYTES = 1_048_576
ENDLESS_LIMIT_BYTES = 64 * CAP_BYTES  # the server gives up here, so a failing test still ends

Writer = Callable[[socket.socket], int]


def fixed(status: int, body: bytes, headers: dict[str, str] | None = None) -> Writer:
    """A reply with a Content-Length body."""

    def write(sock: socket.socket) -> int:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        sock.sendall(head.encode() + b"\r\n" + body)
        return len(body)

    return write


def endless(sock: socket.socket) -> int:
    """200, chunked, 64 KiB chunks until the client goes away (or the limit is reached)."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65_536, b"[" * 65_536)
    sent = 0
    while sent < ENDLESS_LIMIT_BYTES:
        try:
            sock.sendall(chunk)
        except OSError:
            break
        sent += 65_536
    return sent


def gzip_bomb(inflated_bytes: int = 100 * CAP_BYTES) -> bytes:
    """A gzip body of `inflated_bytes` zeros (about a thousandth of that on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"0" * CAP_BYTES
    parts = [packer.compress(block) for _ in range(inflated_bytes // CAP_BYTES)]
    return b"".join([*parts, packer.flush()])


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5.0)
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65_536)
            if not more:
                return
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += sock.recv(65_536)
        method = head.split(b" ", 1)[0].decode()
        sent = self.server.answers[method](sock)
        with self.server.lock:
            self.server.sent.append((method, sent))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, answers: dict[str, Writer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.lock = threading.Lock()
        self.sent: list[tuple[str, int]] = []


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    """`serve(GET=writer, POST=writer)`: a raw loopback server answering each method so."""
    started: list[tuple[_Server, threading.Thread]] = []

    def start(**answers: Writer) -> _Server:
        server = _Server(answers)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def url_of(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def accounting(host: str) -> dict[str, Any]:
    return dict(actors.dump_state(2.0)["hosts"][host]["accounting"])


def settled(host: str, told: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        now = accounting(host)
        return now if now["pending"] == 0 and now["told"] == told else None

    return dict(wait_until(done, timeout_s=10.0, what="every event settled"))


def test_a_2xx_export_reply_of_deeply_nested_json_settles_the_batch_as_export_failed(
    serve: Callable[..., _Server],
) -> None:
    server = serve(GET=fixed(200, FLAG_ON.encode()), POST=fixed(200, DEEP))
    connection = actors.connect(
        url_of(server),
        driver=DRIVER,
        auth=bearer(TOKEN),
        settings=fast_settings(max_retries=1, breaker_enabled=False),
    )
    wait_until(lambda: connection.enabled, what="the flag to be on")
    for i in range(3):
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
    actors.flush(5.0)

    account = settled(connection.host, 3)
    assert account["dropped"] == {"export_failed": 3} and account["balanced"]
    exporter = actors.dump_state(2.0)["hosts"][connection.host]["exporter"]
    assert exporter["handler_errors"] == 0
    assert actors.shutdown(5.0)


def test_a_deeply_nested_flag_reply_decides_the_flag_off_for_a_short_while(
    serve: Callable[..., _Server],
) -> None:
    server = serve(GET=fixed(200, DEEP), POST=fixed(200, b"{}"))
    connection = actors.connect(url_of(server), driver=DRIVER, auth=bearer(TOKEN))

    def decided() -> dict[str, Any] | None:
        flags = actors.dump_state(2.0)["hosts"][connection.host]["feature_flags"]
        return flags if flags["enabled"] is not None else None

    flags = wait_until(decided, timeout_s=10.0, what="the flag to be decided")
    assert (flags["enabled"], flags["source"], flags["handler_errors"]) == (
        False,
        "fetch_failed",
        0,
    )
    assert 0 < flags["expires_in_s"] <= 60
    assert not connection.enabled


@pytest.mark.parametrize("transport_kind", ["session", "urllib3"])
def test_an_endless_chunked_reply_is_read_only_up_to_the_cap(
    serve: Callable[..., _Server], transport_kind: str
) -> None:
    server = serve(POST=endless)
    with requests.Session() as session, urllib3.PoolManager() as pool:
        transport: Any = (
            SessionTransport(session, connect_timeout_s=2.0, read_timeout_s=2.0)
            if transport_kind == "session"
            else Urllib3Transport(pool, connect_timeout_s=2.0, read_timeout_s=2.0)
        )
        outcome = transport.request(
            "POST", url_of(server) + "/telemetry-ext", body=b"{}", headers={}
        )
    assert outcome.status == 200 and len(outcome.body) == CAP_BYTES

    def sent() -> int:
        with server.lock:
            return server.sent[0][1] if server.sent else 0

    wait_until(sent, timeout_s=10.0, what="the server to notice the client left")
    print(f"{transport_kind}: server wrote {sent() / 2**20:.1f} MiB before the client left")
    assert sent() < ENDLESS_LIMIT_BYTES  # the client stopped reading, well before the limit


@pytest.mark.parametrize("transport_kind", ["session", "urllib3"])
def test_a_gzip_bomb_reply_is_inflated_only_up_to_the_cap(
    serve: Callable[..., _Server], transport_kind: str
) -> None:
    bomb = gzip_bomb()
    server = serve(POST=fixed(200, bomb, {"Content-Encoding": "gzip"}))
    with requests.Session() as session, urllib3.PoolManager() as pool:
        transport: Any = (
            SessionTransport(session, connect_timeout_s=2.0, read_timeout_s=2.0)
            if transport_kind == "session"
            else Urllib3Transport(pool, connect_timeout_s=2.0, read_timeout_s=2.0)
        )
        tracemalloc.start()
        try:
            outcome = transport.request(
                "POST", url_of(server) + "/telemetry-ext", body=b"{}", headers={}
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    print(f"{transport_kind}: {len(bomb)} bytes inflating to 100 MiB; peak {peak / 2**20:.1f} MiB")
    assert outcome.status == 200 and outcome.body == b"0" * CAP_BYTES
    assert peak < 16 * CAP_BYTES


def test_an_endless_export_reply_through_a_requests_session_settles_every_batch(
    serve: Callable[..., _Server],
) -> None:
    server = serve(GET=fixed(200, FLAG_ON.encode()), POST=endless)
    with requests.Session() as session:
        connection = actors.connect(
            url_of(server),
            driver=DRIVER,
            auth=bearer(TOKEN),
            session=session,
            settings=fast_settings(max_retries=1, breaker_enabled=False),
        )
        wait_until(lambda: connection.enabled, timeout_s=10.0, what="the flag to be on")
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id="endless"))
        actors.flush(10.0)
        account = settled(connection.host, 1)
        assert account["dropped"] == {"export_failed": 1}
        assert actors.shutdown(5.0)
    with server.lock:
        posts = [sent for method, sent in server.sent if method == "POST"]
    assert posts and all(sent < ENDLESS_LIMIT_BYTES for sent in posts), posts


TRICKLE_LIMIT_S = 8.0


def trickle(sock: socket.socket) -> int:
    """200 with a 1 MB body sent one byte per 0.1 s: every socket read succeeds in time."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
    pause = threading.Event()
    sent = 0
    give_up_at = time.monotonic() + TRICKLE_LIMIT_S
    while time.monotonic() < give_up_at:
        try:
            sock.sendall(b"[")
        except OSError:
            return sent
        sent += 1
        pause.wait(0.1)
    return -1  # the client was still reading when the server gave up


@pytest.mark.parametrize("transport_kind", ["session", "urllib3"])
def test_a_reply_trickling_a_byte_per_read_is_cut_off_after_the_read_timeout(
    serve: Callable[..., _Server], transport_kind: str
) -> None:
    server = serve(POST=trickle)
    with requests.Session() as session, urllib3.PoolManager() as pool:
        transport: Any = (
            SessionTransport(session, connect_timeout_s=1.0, read_timeout_s=0.5)
            if transport_kind == "session"
            else Urllib3Transport(pool, connect_timeout_s=1.0, read_timeout_s=0.5)
        )
        outcome = transport.request(
            "POST", url_of(server) + "/telemetry-ext", body=b"{}", headers={}
        )
    assert outcome.status == 200 and 0 < len(outcome.body) < 100

    def sent() -> int:
        with server.lock:
            return server.sent[0][1] if server.sent else 0

    left_after = wait_until(sent, timeout_s=TRICKLE_LIMIT_S + 5.0, what="the trickle to end")
    print(f"{transport_kind}: the client left after {left_after} trickled bytes")
    assert left_after > 0, "the client kept reading until the server gave up"
