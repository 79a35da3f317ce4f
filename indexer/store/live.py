"""The searchable vectors of a store: an immutable main FAISS segment, tombstones, a delta.

Rebuilding a graph index over a million vectors takes minutes, so a run that changes a few
photos must not. The main segment (``vectors.faiss``) stays as it was built until the next
compaction. Regions deleted since then are *tombstones*: still in the file, left out of
every search by a FAISS ``IDSelectorNot``. Regions added since then have ids above every id
of the main segment (ids are never reused) and form the *delta*, a small exact flat index
read from SQLite. A search asks both and merges: the delta answers exactly, the main
segment as exactly as its type allows over its live vectors, and a deleted region is never
returned. With a flat main segment the merged answer is exactly that of a fresh rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vectors import Exclusion, VectorIndex

# Compaction (a rebuild of the main segment from SQLite) when the pending changes exceed
# this share of the main segment: the delta is searched exactly (about 1 ms per 10k
# vectors) and tombstones still cost graph hops, so both stay a few percent at most.
COMPACT_FRACTION = 0.05
# Exact (flat) indexes up to this size are rebuilt after every change: that reads and
# writes at most ~200 MB, and small indexes stay one file.
FLAT_COMPACT_MAX = 100_000


@dataclass(frozen=True)
class MainRecord:
    """What meta records about the main FAISS file, so a reader knows it is the same one."""

    generation: int
    size: int
    max_id: int
    count: int
    kind: str


@dataclass(frozen=True)
class VectorStatus:
    """Main segment against SQLite, from counts alone (cheap at any size)."""

    main: MainRecord | None
    """None when there is no usable main file (missing, damaged, or not this store's)."""
    regions: int
    delta: int
    tombstones: int

    @property
    def pending(self) -> int:
        return self.delta + self.tombstones


def compaction_reason(status: VectorStatus, target_kind: str, *, final: bool) -> str | None:
    """Why the main segment should be rebuilt now, or None to keep it and its delta.

    ``target_kind`` is the index type the store's size calls for. During a run
    (``final=False``) only cheap rebuilds happen (exact indexes of up to
    :data:`FLAT_COMPACT_MAX`): searches stay correct meanwhile, through the delta.
    """
    main = status.main
    cheap = target_kind == "flat" and status.regions <= FLAT_COMPACT_MAX
    if main is None:
        return "no usable FAISS file" if final or cheap else None
    if not final and not cheap:
        return None
    if final and target_kind != main.kind:
        return f"the index type changes from {main.kind} to {target_kind}"
    if status.pending == 0:
        return None
    if cheap:
        return "a small exact index is rebuilt after every change"
    if status.pending > COMPACT_FRACTION * max(main.count, 1):
        return (
            f"{status.delta} added and {status.tombstones} deleted vectors since the last "
            f"build exceed {COMPACT_FRACTION:.0%} of {main.count}"
        )
    return None


class LiveVectors:
    """Main segment minus tombstones plus delta, searched as one index (see module doc)."""

    def __init__(
        self,
        main: VectorIndex,
        tombstones: np.ndarray | None = None,
        delta: VectorIndex | None = None,
        *,
        max_id: int | None = None,
        record: MainRecord | None = None,
    ) -> None:
        self.main = main
        self.tombstones = np.sort(
            np.asarray(tombstones if tombstones is not None else [], np.int64)
        )
        self.delta = delta if delta is not None else VectorIndex.empty(main.dim, "flat")
        if max_id is None:
            main_ids = main.ids()
            max_id = int(main_ids.max()) if len(main_ids) else 0
        self.max_id = int(max_id)
        self.record = record
        self._excluded = Exclusion(self.tombstones) if len(self.tombstones) else None

    # -- shape ---------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Live vectors: the main segment's, less tombstones, plus the delta's."""
        return self.main.ntotal - len(self.tombstones) + self.delta.ntotal

    @property
    def dim(self) -> int:
        return self.main.dim

    @property
    def index_type(self) -> str:
        return self.main.index_type

    @property
    def pending(self) -> int:
        """Changes since the main segment was built (tombstones plus delta vectors)."""
        return len(self.tombstones) + self.delta.ntotal

    def ids(self) -> np.ndarray:
        """Every live region id."""
        main_ids = self.main.ids()
        if len(self.tombstones):
            main_ids = main_ids[~np.isin(main_ids, self.tombstones)]
        return np.concatenate([main_ids, self.delta.ids()])

    # -- queries -------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (Q, k'), best first (ties by id); -1 marks empty slots.

        The main segment answers over its live vectors (``allowed`` as a FAISS selector,
        tombstones left out as :class:`.vectors.Exclusion` decides), the delta exactly;
        each query's two lists merge into one.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        total = self.ntotal
        if total == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = max(1, min(int(k), total))
        if allowed is None:
            main_allowed, delta_allowed = None, None
        else:
            allowed = np.asarray(allowed, np.int64)
            main_allowed = allowed[allowed <= self.max_id]
            if len(self.tombstones):
                main_allowed = main_allowed[~np.isin(main_allowed, self.tombstones)]
            delta_allowed = allowed[allowed > self.max_id]
        parts = []
        if self.main.ntotal > len(self.tombstones) and (main_allowed is None or len(main_allowed)):
            excluded = self._excluded if main_allowed is None else None
            parts.append(self.main.search(queries, k, main_allowed, excluded))
        if self.delta.ntotal and (delta_allowed is None or len(delta_allowed)):
            parts.append(self.delta.search(queries, k, delta_allowed))
        if not parts:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return merge_hits(parts, k)

    def scores_for(self, query: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (ids, scores) of ``query`` against the given ids that are live."""
        ids = np.asarray(ids, np.int64)
        in_main = ids[ids <= self.max_id]
        if len(self.tombstones):
            in_main = in_main[~np.isin(in_main, self.tombstones)]
        found_main, scores_main = self.main.scores_for(query, in_main)
        found_delta, scores_delta = self.delta.scores_for(query, ids[ids > self.max_id])
        return (
            np.concatenate([found_main, found_delta]),
            np.concatenate([scores_main, scores_delta]),
        )


def merge_hits(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the ``k`` best of several (scores, ids) lists: best first, ties by id."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    scores = np.where(ids < 0, -np.inf, scores)
    order = np.lexsort((ids, -scores), axis=-1)[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_ids = np.take_along_axis(ids, order, axis=1)
    top_ids[~np.isfinite(top_scores)] = -1
    return top_scores.astype(np.float32), top_ids
