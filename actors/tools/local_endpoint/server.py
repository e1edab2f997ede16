"""`LocalEndpoint`: a real loopback telemetry endpoint (the server side of PROTOCOL.md)."""

from __future__ import annotations

import copy
import threading
import time
from types import TracebackType
from typing import Any

from .faults import Fault
from .handler import FLAG_NAME, EndpointConfig, EndpointServer, EndpointState
from .store import LogStore
from .validate import MAX_BODY_BYTES
from .web import ClientState, Dashboard, is_loopback

__all__ = ["FLAG_NAME", "Fault", "LocalEndpoint"]


class LocalEndpoint:
    """Serves feature flags and `/telemetry-ext|unauth` on a daemon thread, storing what it accepts.

    Use as a context manager, or `start()` then `stop()`; `close()` (and `__exit__`) also closes
    the store, so read `.store` before leaving the `with` block (or reopen a file database).
    `set_fault`, `set_flag` and `stats` are safe from any thread. `stop()` is bounded: hanging and
    slow handlers wait on a stop event, and open connections are shut down.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = "local-token",
        db_path: str = ":memory:",
        flag_enabled: bool = True,
        flag_ttl_s: int = 900,
        driver_name: str = "PYTHON",
        fault: Fault | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        *,
        request_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        store: LogStore | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be within 0..65535, got {port}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        if flag_ttl_s < 0:
            raise ValueError(f"flag_ttl_s must be >= 0, got {flag_ttl_s}")
        if request_timeout_s <= 0 or stop_timeout_s <= 0:
            raise ValueError("request_timeout_s and stop_timeout_s must be > 0")
        self._address = (host, port)
        self._stop_timeout_s = stop_timeout_s
        # A store passed in is shared (e.g. by several endpoints) and closed by its owner.
        self._owns_store = store is None
        self.store = store if store is not None else LogStore(db_path)
        config = EndpointConfig(
            store=self.store,
            token=token,
            driver_name=driver_name,
            max_body_bytes=max_body_bytes,
            request_timeout_s=request_timeout_s,
        )
        self._state = EndpointState(config, fault, flag_enabled, flag_ttl_s)
        self._server: EndpointServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host_port(self) -> str:
        """'HOST:PORT' actually bound (the port is real once started, even when asked for 0)."""
        if self._server is None:
            raise RuntimeError("LocalEndpoint is not started")
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. 'http://127.0.0.1:PORT' (no trailing slash)."""
        return f"http://{self.host_port}"

    def start(self) -> LocalEndpoint:
        """Bind and serve on a daemon thread; returns self. An endpoint starts at most once."""
        if self._server is not None:
            raise RuntimeError("LocalEndpoint was already started")
        self._server = EndpointServer(self._address, self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"local-endpoint-{self.host_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hanging handlers, close connections; bounded and idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None or self._state.stopping.is_set():
            return
        deadline = time.monotonic() + self._stop_timeout_s
        self._state.stopping.set()
        if thread.is_alive():
            server.shutdown()  # returns once serve_forever leaves its loop (<= poll interval)
        server.server_close()
        self._state.disconnect_all()
        thread.join(max(0.0, deadline - time.monotonic()))
        # Released handlers still have to count their requests: stats() after stop() is final.
        self._state.wait_all_closed(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """`stop()` and close the store (unless it was passed in)."""
        self.stop()
        if self._state.page is not None:
            self._state.page.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> LocalEndpoint:
        if self._server is None:
            try:
                self.start()
            except BaseException:
                self.store.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def serve_page(
        self,
        *,
        endpoints: tuple[LocalEndpoint, ...] = (),
        client_state: ClientState | None = None,
    ) -> LocalEndpoint:
        """Also serve the page and its read-only JSON API (`/`, `/api/*`; see web.py) from the
        store; before `start()`. `endpoints` are other endpoints sharing the store, whose request
        counters the page shows too; `client_state` returns the client's `dump_state()` when the
        page runs in its process. Returns self."""
        if self._server is not None:
            raise RuntimeError("serve_page() must be called before start()")
        everyone = (self, *(ep for ep in endpoints if ep is not self))

        def stats() -> dict[str, dict[str, Any]]:
            return {ep.host_port: ep.stats() for ep in everyone if ep._server is not None}

        self._state.page = Dashboard(
            self.store, stats, client_state, loopback_only=is_loopback(self._address[0])
        )
        return self

    @property
    def page_url(self) -> str | None:
        """The page's address ('http://127.0.0.1:PORT/') when it is served, else None."""
        return None if self._state.page is None else self.url + "/"

    def set_fault(self, fault: Fault | None) -> None:
        """Misbehave from the next request on (None heals); restarts `times` and `flap` counts."""
        self._state.set_fault(fault)

    def set_flag(self, enabled: bool, ttl_s: int = 900) -> None:
        """Change the feature flag value and TTL served from the next fetch on."""
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        with self._state.lock:
            self._state.flag = (enabled, ttl_s)

    def stats(self) -> dict[str, Any]:
        """Counters: `requests` {route: {status: n}} (status 0 = closed without an answer),
        `flag_fetches`, `flag_fetches_authorized`, `bytes_received`, `faults_injected`,
        `logs_accepted`."""
        with self._state.lock:
            return {"requests": copy.deepcopy(self._state.requests), **self._state.counters}
