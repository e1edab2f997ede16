"""The real local endpoint behind a relay that keeps every byte the client sent.

`Wire` is a `LocalEndpoint` with a loopback TCP relay in front of it: the library talks to the
relay, the relay forwards to the endpoint and records every byte the client sent (request lines,
headers, bodies), so a test can search exactly what left the process. Everything is bounded:
sockets have timeouts, threads are daemons joined with a deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from actors.tools.local_endpoint import LocalEndpoint

TOKEN = "privacy-token"
IO_TIMEOUT_S = 5.0
JOIN_TIMEOUT_S = 2.0


class Relay:
    """Forwards loopback TCP connections to `target`, recording what clients send."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._lock = threading.Lock()
        self._sent: list[bytes] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._start(self._accept)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def received(self) -> bytes:
        """Every byte any client sent so far, in arrival order per chunk."""
        with self._lock:
            return b"".join(self._sent)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="privacy-relay")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=IO_TIMEOUT_S)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(IO_TIMEOUT_S)
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._pump, client, upstream, True)
            self._start(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while not self._stopping.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if record:
                    with self._lock:
                        self._sent.append(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        """Close the listener and every relayed connection; join the threads (bounded)."""
        self._stopping.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv(); close() does not
            sock.close()
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)


class Wire:
    """The endpoint (its store of decoded logs) and the relay (the raw bytes) together."""

    def __init__(self, endpoint: LocalEndpoint, relay: Relay) -> None:
        self.endpoint = endpoint
        self.relay = relay

    @property
    def url(self) -> str:
        return self.relay.url

    def received(self) -> bytes:
        return self.relay.received()

    def error_infos(self) -> list[dict[str, Any]]:
        """`error_info` of every stored log that has one, in arrival order."""
        entries = [log["entry"]["sql_driver_log"] for log in self.endpoint.store.logs()]
        return [entry["error_info"] for entry in entries if "error_info" in entry]
