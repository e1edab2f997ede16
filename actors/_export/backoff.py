"""Retry delays: capped exponential backoff with jitter, and Retry-After parsing."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

import attrs

# 2**62 * any sane base already dwarfs any cap; stops float overflow for absurd attempts.
_MAX_EXPONENT = 62


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _fraction(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """Capped exponential backoff with symmetric proportional jitter.

    The nominal delay for retry ``attempt`` (0 = first retry) is ``base_s * 2**attempt``
    capped at ``max_s``; jitter then scales it by a uniform factor in
    ``[1 - jitter, 1 + jitter]`` (``jitter=0.5`` means up to +/-50%), and the result is
    clamped to ``[0, max_s]``. Spreading retries this way keeps many clients that failed
    together from retrying together.
    """

    base_s: float = attrs.field(validator=_non_negative)
    max_s: float = attrs.field(validator=_non_negative)
    jitter: float = attrs.field(default=0.5, validator=_fraction)

    def delay_s(
        self,
        attempt: int,
        rng: random.Random,
        retry_after_s: float | None = None,
        retry_after_max_s: float = 60.0,
    ) -> float:
        """Return seconds to wait before retry ``attempt``; a server Retry-After wins."""
        if retry_after_s is not None and not math.isnan(retry_after_s):
            cap = max(0.0, retry_after_max_s) if not math.isnan(retry_after_max_s) else 0.0
            return min(max(0.0, retry_after_s), cap)
        exponent = min(max(0, attempt), _MAX_EXPONENT)
        nominal = min(self.base_s * (2.0**exponent), self.max_s)
        factor = 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return min(max(0.0, nominal * factor), self.max_s)


def parse_retry_after(value: str | None, now_epoch_s: float | None = None) -> float | None:
    """Parse a Retry-After header (seconds or HTTP-date) into seconds; None if unusable.

    Negative or non-finite seconds and unparseable text give None; an HTTP-date in the
    past gives 0.0 (retry now). Never raises.
    """
    if value is None:
        return None
    try:
        text = value.strip()
        if not text:
            return None
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
            return None
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000" means UTC without a stated zone
            when = when.replace(tzinfo=UTC)
        now = time.time() if now_epoch_s is None else now_epoch_s
        delta = when.timestamp() - now
        if not math.isfinite(delta):
            return None
        return max(0.0, delta)
    except Exception:
        return None
