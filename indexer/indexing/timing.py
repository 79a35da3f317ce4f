"""Seconds per stage of an index run, summed: one helper instead of a timing block per stage.

Runs report where their time went (``Indexer.timings``: scan, hash, decode, detect, crop,
preprocess, embed, ocr, store, faiss); the benchmarks print it. A stage that raises still
counts the time it took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

Timings = dict[str, float]


@contextmanager
def timed(timings: Timings | None, stage: str) -> Iterator[None]:
    """Add the seconds the ``with`` block takes to ``timings[stage]`` (None: time nothing)."""
    if timings is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
