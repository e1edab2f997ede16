"""The exporter encodes a batch in slices, yielding the GIL between them; same output."""

from __future__ import annotations

import time

import pytest

import actors._export.slices as slices
from actors._export.slices import SLICE_S, encode_in_slices


def slow_encode(item: int) -> str:
    deadline = time.perf_counter() + SLICE_S / 2
    while time.perf_counter() < deadline:
        pass
    return f"<{item}>"


def test_slices_give_what_the_plain_loop_gives_and_yield_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    yields: list[None] = []
    monkeypatch.setattr(slices.os, "sched_yield", lambda: yields.append(None))
    items = list(range(40))
    assert encode_in_slices(items, slow_encode) == [slow_encode(i) for i in items]
    assert 10 <= len(yields) <= 40  # about one per two items of half a slice each


def test_a_quick_batch_does_not_yield(monkeypatch: pytest.MonkeyPatch) -> None:
    yields: list[None] = []
    monkeypatch.setattr(slices.os, "sched_yield", lambda: yields.append(None))
    assert encode_in_slices([1, 2, 3], str) == ["1", "2", "3"]
    assert yields == []


def test_an_encoding_error_reaches_the_caller() -> None:
    def broken(item: int) -> str:
        raise ValueError(f"cannot encode {item}")

    with pytest.raises(ValueError, match="cannot encode 1"):
        encode_in_slices([1], broken)
