"""`Fault`: how the local endpoint misbehaves, as a small value object parsed from CLI specs."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs

FAULT_MODES = (
    "none",
    "status",
    "retry_after",
    "slow",
    "hang",
    "drop",
    "malformed",
    "partial",
    "flap",
)
_DEFAULT_STATUS = {"retry_after": 429, "flap": 503}
# mode -> (required args, optional args), in spec order; each arg names a Fault field.
_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "none": ((), ()),
    "status": (("status",), ()),
    "retry_after": ((), ("retry_after_s", "status")),
    "slow": (("delay_s",), ()),
    "hang": ((), ()),
    "drop": ((), ()),
    "malformed": ((), ()),
    "partial": (("k",), ()),
    "flap": (("period",), ("status",)),
}
SPEC_HELP = (
    "MODE[:ARG...][xTIMES][+flags], e.g. status:503, retry_after:2, retry_after:2:503, slow:1.5, "
    "hang, drop, malformed, partial:1, flap:3:503, status:503x2, drop+flags"
)


@attrs.frozen(kw_only=True)
class Fault:
    """What the endpoint does wrong; `times` limits it to the next N requests, then healthy.

    Modes: `status` answers `status`; `retry_after` answers 429 (or `status`) with `Retry-After:
    retry_after_s` when set; `slow` waits `delay_s` then answers normally; `hang` never answers
    until the endpoint stops; `drop` closes the connection without an answer (a reset mid-body);
    `malformed` answers 200 with a non-JSON body; `partial` stores and acknowledges all but the
    last `k` logs; `flap` answers normally for `period` requests, then `status` (503) for `period`
    requests, and so on. Feature-flag fetches misbehave only when `applies_to_flags` (never for
    `partial`).
    """

    mode: str = "none"
    status: int | None = None
    retry_after_s: int | None = None
    delay_s: float = 0.0
    period: int = 1
    k: int = 1
    applies_to_flags: bool = False
    times: int | None = None

    def __attrs_post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(f"invalid Fault(mode={self.mode!r}): {problem}")

    def _problem(self) -> str:
        if self.mode not in FAULT_MODES:
            return f"mode must be one of {', '.join(FAULT_MODES)}"
        if self.mode == "status" and self.status is None:
            return "mode 'status' needs a status code"
        if self.status is not None and not 100 <= self.status <= 599:
            return f"status {self.status} is not an HTTP status code"
        if self.retry_after_s is not None and self.retry_after_s < 0:
            return "retry_after_s must be >= 0"
        if not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            return "delay_s must be a finite number >= 0"
        if self.period < 1:
            return "period must be >= 1"
        if self.k < 0:
            return "k must be >= 0"
        if self.times is not None and self.times < 1:
            return "times must be >= 1 (or None for every request)"
        return ""

    @property
    def effective_status(self) -> int:
        """The status code a `status`, `retry_after` or failing `flap` request answers."""
        return self.status or _DEFAULT_STATUS.get(self.mode, 503)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse a CLI spec (see `SPEC_HELP`); raise `ValueError` saying what is wrong."""
        text = spec.strip()
        applies_to_flags = text.endswith("+flags")
        text = text.removesuffix("+flags")
        times: int | None = None
        repeated = re.fullmatch(r"(.+?)x([0-9]+)", text)
        if repeated:
            text, times = repeated[1], int(repeated[2])
        mode, *args = text.split(":")
        if mode not in _ARGS:
            raise ValueError(f"invalid fault {spec!r}: unknown mode {mode!r}; expected {SPEC_HELP}")
        required, optional = _ARGS[mode]
        if not len(required) <= len(args) <= len(required) + len(optional):
            wanted = ":".join([mode, *(f"<{n}>" for n in required), *(f"[{n}]" for n in optional)])
            raise ValueError(f"invalid fault {spec!r}: expected {wanted}")
        values: dict[str, Any] = {}
        for name, raw in zip(required + optional, args, strict=False):
            try:
                values[name] = float(raw) if name == "delay_s" else int(raw)
            except ValueError:
                raise ValueError(
                    f"invalid fault {spec!r}: {name} {raw!r} is not a number"
                ) from None
        try:
            return cls(mode=mode, times=times, applies_to_flags=applies_to_flags, **values)
        except ValueError as error:
            raise ValueError(f"invalid fault {spec!r}: {error}") from None
