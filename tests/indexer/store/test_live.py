"""LiveVectors: main segment minus tombstones plus delta, against a fresh rebuild.

Stores are written through ``Store.commit_batch`` (the path every index run takes) with
random unit vectors, so the FAISS side is real and no model is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.store import KIND_IMAGE, LiveVectors, NewPhoto, NewRegion, Store
from indexer.store.live import (
    COMPACT_FRACTION,
    MainRecord,
    VectorStatus,
    compaction_reason,
    merge_hits,
)

DIM = 16


def photo(name: str, seed: int, regions: int = 3, vector: np.ndarray | None = None) -> NewPhoto:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((regions, DIM)).astype(np.float32)
    if vector is not None:
        vecs[0] = vector
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    kinds = [KIND_IMAGE] + ["object"] * (regions - 1)
    return NewPhoto(
        f"/photos/{name}.jpg",
        100,
        seed,
        10,
        8,
        f"hash-{name}-{seed}",
        "",
        [
            NewRegion(k, (0.0, 0.0, 10.0, 8.0), v, None if k == KIND_IMAGE else "cat", 0.9)
            for k, v in zip(kinds, vecs, strict=True)
        ],
    )


def queries(count: int = 40, seed: int = 99) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def photo_ids(store: Store) -> dict[str, int]:
    return {path: state.id for path, state in store.photo_states().items()}


def build(store: Store, photos: int, kind: str = "flat", seed: int = 0) -> None:
    """``photos`` photos committed, then a main segment of ``kind`` built and saved."""
    store.set_meta(embed_dim=DIM)
    store.commit_batch([photo(f"p{i}", seed + i) for i in range(photos)])
    store.compact_vectors(kind)


def change(store: Store, delete: int, add: int, replace: int, seed: int = 1000) -> np.ndarray:
    """Delete, add and re-index photos in two batches; returns the deleted region ids."""
    ids = photo_ids(store)
    paths = sorted(ids)
    gone = [ids[p] for p in paths[:delete]]
    first = store.commit_batch([], remove_photo_ids=gone)
    replaced = [
        photo(p.rsplit("/", 1)[1][:-4], seed + i)
        for i, p in enumerate(paths[len(paths) - replace :])
    ]
    second = store.commit_batch(replaced + [photo(f"new{i}", seed + 500 + i) for i in range(add)])
    return np.concatenate([first.removed_ids, second.removed_ids])


def fresh(store: Store, kind: str = "flat") -> LiveVectors:
    return LiveVectors(store.rebuild_vectors(kind))


# -- exact indexes: identical to a fresh rebuild -------------------------------------------
def test_flat_main_with_delta_and_tombstones_answers_like_a_fresh_rebuild(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        build(store, 60)
        deleted = change(store, delete=7, add=9, replace=5)
        live, from_file = store.load_vectors()
        assert from_file
        assert len(live.tombstones) == len(deleted) and live.delta.ntotal == (9 + 5) * 3
        rebuilt = fresh(store)
        assert live.ntotal == rebuilt.ntotal
        assert sorted(live.ids().tolist()) == sorted(rebuilt.ids().tolist())
        for k in (1, 10, 500):
            got, want = live.search(queries(), k), rebuilt.search(queries(), k)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[0], want[0])
            assert not np.isin(got[1], deleted).any()


def test_filtered_and_subset_scores_match_a_fresh_rebuild(tmp_path: Path) -> None:
    """``allowed`` (FAISS selector) and ``scores_for`` (brute force over a subset) both
    skip tombstones and find delta vectors, exactly like a rebuild."""
    with Store(tmp_path / "index", create=True) as store:
        build(store, 50)
        deleted = change(store, delete=5, add=6, replace=4)
        live, _ = store.load_vectors()
        rebuilt = fresh(store)
        everything = np.sort(np.concatenate([rebuilt.ids(), deleted]))
        allowed = everything[::3]  # includes deleted ids: they must still never come back
        got = live.search(queries(), 20, allowed=allowed)
        want = rebuilt.search(queries(), 20, allowed=allowed)
        np.testing.assert_array_equal(got[1], want[1])
        assert not np.isin(got[1], deleted).any()
        q = queries(1)[0]
        found, scores = live.scores_for(q, allowed)
        want_found, want_scores = rebuilt.scores_for(q, allowed)
        order, want_order = np.argsort(found), np.argsort(want_found)
        np.testing.assert_array_equal(found[order], want_found[want_order])
        np.testing.assert_allclose(scores[order], want_scores[want_order], rtol=1e-6)


def test_ties_between_duplicate_vectors_order_by_region_id(tmp_path: Path) -> None:
    """Copies of one photo score exactly alike; main and delta copies rank as a rebuild's."""
    same = queries(1, seed=5)[0]
    with Store(tmp_path / "index", create=True) as store:
        store.set_meta(embed_dim=DIM)
        store.commit_batch([photo(f"a{i}", i, vector=same) for i in range(3)])
        store.compact_vectors("flat")
        store.commit_batch([photo(f"b{i}", 10 + i, vector=same) for i in range(3)])
        live, _ = store.load_vectors()
        scores, ids = live.search(same[None, :], 6)
        want_scores, want_ids = fresh(store).search(same[None, :], 6)
    np.testing.assert_array_equal(ids, want_ids)
    assert np.all(np.diff(ids[0]) > 0)  # all tie: region ids ascending


def test_searcher_filters_over_tombstones_and_delta_match_a_rebuild(tmp_path: Path) -> None:
    """``Searcher`` with folder filters (FAISS selector and exact subset paths) answers
    like it does over a freshly rebuilt file."""
    from retrieval.search import Searcher
    from retrieval.search.filters import SearchFilters

    index_dir, rebuilt_dir = tmp_path / "index", tmp_path / "rebuilt"
    with Store(index_dir, create=True) as store:
        build(store, 40)
        change(store, delete=6, add=8, replace=5)
        assert store.vector_status().pending > 0
    shutil.copytree(index_dir, rebuilt_dir)
    with Store(rebuilt_dir) as store:
        store.compact_vectors()
        assert store.vector_status().pending == 0
    filters = [None, SearchFilters(folders=("/photos",)), SearchFilters(labels=("cat",))]
    answers = []
    for folder in (index_dir, rebuilt_dir):
        with Searcher(folder) as searcher:
            answers.append(
                [
                    [
                        (r.region_id, round(r.score, 5))
                        for r in searcher.search_vector(q, 8, filters=f, group=g)
                    ]
                    for q in queries(10)
                    for f in filters
                    for g in ("photo", "object")
                ]
            )
    assert answers[0] == answers[1] and any(answers[0])


# -- graph indexes: deleted ids never return, merge = approximate main + exact delta --------
def test_hnsw_main_never_returns_deleted_regions(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        build(store, 150, kind="hnsw")
        ids = photo_ids(store)
        # Delete the photos nearest to the queries: the graph must route around them.
        q = queries(20)
        near = set(store.load_vectors()[0].search(q, 3)[1].ravel().tolist())
        victims = [pid for pid, regions in _regions_by_photo(store).items() if near & regions]
        removed = store.commit_batch([], remove_photo_ids=victims).removed_ids
        store.commit_batch([photo(f"extra{i}", 7000 + i) for i in range(10)])
        live, _ = store.load_vectors()
        assert live.index_type == "hnsw" and len(live.tombstones) == len(removed)
        assert len(ids) - len(victims) + 10 == len(store.photo_states())
        for k in (5, 50, live.ntotal):
            scores, found = live.search(q, k)
            assert not np.isin(found, removed).any()
            # The merge is exactly: HNSW over the live main vectors, exact over the delta.
            main = live.main.search(q, k, excluded=live._excluded)
            delta = live.delta.search(q, k)
            want_scores, want_ids = merge_hits([main, delta], min(k, live.ntotal))
            np.testing.assert_array_equal(found, want_ids)
            np.testing.assert_array_equal(scores, want_scores)
        # and every delta vector that beats the k-th score is in the answer
        scores, found = live.search(q, 10)
        d_scores, d_ids = live.delta.search(q, 10)
        for row in range(len(q)):
            better = d_ids[row][d_scores[row] > scores[row, -1]]
            assert set(better.tolist()) <= set(found[row].tolist())


def _regions_by_photo(store: Store) -> dict[int, set[int]]:
    return {p.id: {r.id for r in regions} for p, regions in store.iter_photos()}


# -- persistence and crashes ---------------------------------------------------------------
def test_tombstones_and_delta_persist_across_runs_and_compaction_clears_them(
    tmp_path: Path,
) -> None:
    index_dir = tmp_path / "index"
    with Store(index_dir, create=True) as store:
        build(store, 40)
        size_before = store.meta()["faiss_bytes"]
        removed = np.concatenate(
            [change(store, delete=3, add=2, replace=2), change(store, 2, 4, 1, seed=3000)]
        )
        status = store.vector_status()
        assert status.main is not None and status.main.max_id == 120
        # deletions of main regions are tombstones; deleted delta regions simply go
        assert status.tombstones == np.sum(removed <= 120) > 0
        assert np.sum(removed > 120) > 0
        assert status.delta == status.regions - (120 - status.tombstones)
        assert store.meta()["faiss_bytes"] == size_before  # small changes write no FAISS
    with Store(index_dir) as store:  # another process: the same view from SQLite + file
        live, from_file = store.load_vectors()
        assert from_file and live.pending == status.pending
        before = live.search(queries(), 10)
        store.compact_vectors()
        after, from_file = store.load_vectors()
        assert from_file and after.pending == 0 and store.vector_status().pending == 0
        np.testing.assert_array_equal(after.search(queries(), 10)[1], before[1])


def test_a_crash_between_commit_and_save_leaves_a_usable_file(tmp_path: Path) -> None:
    """Batches committed after the last save (the writer then died) are found in SQLite:
    no rebuild, and the answers are a rebuild's."""
    with Store(tmp_path / "index", create=True) as store:
        build(store, 30)
        generation = int(store.meta()["faiss_generation"])
        change(store, delete=4, add=3, replace=2)  # ... and no save: the crash
        assert store.generation > generation and not store.faiss_is_fresh()
        live, from_file = store.load_vectors()
        assert from_file
        np.testing.assert_array_equal(
            live.search(queries(), 10)[1], fresh(store).search(queries(), 10)[1]
        )


def test_a_crash_after_renaming_a_rebuild_but_before_recording_it(tmp_path: Path) -> None:
    """A compaction whose file went into place without its record: the file is not the
    recorded one (same size, other ids), so it is rebuilt rather than trusted."""
    with Store(tmp_path / "index", create=True) as store:
        build(store, 30)
        ids = photo_ids(store)
        store.commit_batch([photo("swap", 77)], remove_photo_ids=[ids["/photos/p0.jpg"]])
        store.rebuild_vectors("flat").save(store.faiss_path)  # same count: same size
        assert str(Path(store.faiss_path).stat().st_size) == store.meta()["faiss_bytes"]
        live, from_file = store.load_vectors()
        assert not from_file
        np.testing.assert_array_equal(
            live.search(queries(), 10)[1], fresh(store).search(queries(), 10)[1]
        )


def test_unrecorded_deletions_are_found_by_comparing_ids(tmp_path: Path) -> None:
    """Regions deleted without tombstones (a repair, a lost table) still never return."""
    with Store(tmp_path / "index", create=True) as store:
        build(store, 30)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM regions WHERE photo_id IN (1, 2)")
            conn.exec_driver_sql("DELETE FROM photos WHERE id IN (1, 2)")
            conn.exec_driver_sql("DELETE FROM tombstones")
        live, from_file = store.load_vectors()
        assert from_file and len(live.tombstones) == 6
        np.testing.assert_array_equal(
            live.search(queries(), 10)[1], fresh(store).search(queries(), 10)[1]
        )


def test_a_reload_keeps_the_mapped_main_segment(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        build(store, 20)
        first, _ = store.load_vectors()
        assert first.main.mapped
        change(store, delete=1, add=1, replace=0)
        second, _ = store.load_vectors(reuse=first)
        assert second.main is first.main and second.pending == 6
        store.compact_vectors()
        third, _ = store.load_vectors(reuse=second)
        assert third.main is not first.main and third.pending == 0


# -- when to compact -----------------------------------------------------------------------
def _status(kind: str, count: int, delta: int, tombstones: int) -> VectorStatus:
    record = MainRecord(1, 1, count, count, kind)
    return VectorStatus(record, count + delta - tombstones, delta, tombstones)


@pytest.mark.parametrize(
    ("status", "target", "final", "compacts"),
    [
        (_status("hnsw", 1_000_000, 300, 200), "hnsw", True, False),  # a small run
        (_status("hnsw", 1_000_000, 300, 200), "hnsw", False, False),
        (_status("hnsw", 1_000_000, int(COMPACT_FRACTION * 1e6), 1), "hnsw", True, True),
        (_status("hnsw", 1_000_000, int(COMPACT_FRACTION * 1e6), 1), "hnsw", False, False),
        (_status("flat", 5_000, 3, 0), "flat", False, True),  # small exact: always
        (_status("flat", 5_000, 0, 0), "flat", True, False),  # nothing changed
        (_status("flat", 49_000, 2_000, 0), "hnsw", True, True),  # grew past the threshold
        (VectorStatus(None, 10, 10, 0), "flat", False, True),  # no file yet: cheap to make
        (VectorStatus(None, 10**6, 10**6, 0), "hnsw", False, False),  # not mid-run
        (VectorStatus(None, 10**6, 10**6, 0), "hnsw", True, True),
    ],
)
def test_compaction_reason(status: VectorStatus, target: str, final: bool, compacts: bool) -> None:
    assert (compaction_reason(status, target, final=final) is not None) == compacts
