"""The timing helper: stages sum across blocks, and a stage that raises still counts."""

from __future__ import annotations

import time

import pytest

from indexer.indexing.timing import timed


def test_blocks_of_one_stage_add_up() -> None:
    timings: dict[str, float] = {}
    for _ in range(2):
        with timed(timings, "decode"):
            time.sleep(0.01)
    with timed(timings, "embed"):
        pass
    assert set(timings) == {"decode", "embed"}
    # Lower bounds only: a sleep lasts at least what it asks, while an upper bound on a
    # block's time would be a wall-clock assertion that a busy machine can break.
    assert timings["decode"] >= 0.02 and timings["embed"] >= 0.0


def test_a_stage_that_raises_is_counted_and_the_error_passes() -> None:
    timings: dict[str, float] = {"store": 1.0}
    with pytest.raises(RuntimeError), timed(timings, "store"):
        raise RuntimeError("disk full")
    assert timings["store"] > 1.0


def test_none_times_nothing() -> None:
    with timed(None, "ocr"):
        value = 1
    assert value == 1
