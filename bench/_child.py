"""A helper Python in a child process, steered over pipes: one JSON line a command, one a reply.

So the child's CPU and memory are never billed to ours; every call has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
from typing import Any

from _common import ROOT


class ChildProcess:
    """Runs `python <args>` from the checkout and talks to it; `name` is said in its errors."""

    name = "child"

    def __init__(self, args: list[str], timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(ROOT),
        )

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self._timeout_s)
        if not ready:
            raise TimeoutError(f"{self.name} did not answer")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, command: str, **args: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps({"cmd": command, **args}) + "\n").encode())
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Tell the child to stop and wait for it, boundedly."""
        if self._proc.poll() is None:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError, ValueError):
                self.call("stop")
            try:
                self._proc.wait(timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=self._timeout_s)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
