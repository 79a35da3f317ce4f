"""The compressed ``ivfpq`` index (:mod:`indexer.store.ivf`) in a real store.

A few thousand clustered 512-d unit vectors (the decaying spectrum real CLIP vectors show,
as ``benchmarks/query_speed.py`` makes them) committed through ``Store.commit_batch``; the
FAISS file is real IVF-PQ, loaded with its lists memory-mapped, and searches re-rank their
candidates with the vectors SQLite holds.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.store import KIND_IMAGE, NewPhoto, NewRegion, Store, ivf
from indexer.store import vectors as vector_index
from indexer.store.doctor import check, repair
from indexer.store.ivf import AUTO_IVFPQ_MIN, DRIFT_RATIO, IVFPQ_MIN_VECTORS, RERANK_CANDIDATES
from indexer.store.vectors import AUTO_HNSW_MIN, IndexParams, choose_index_type

DIM = 512
PER_PHOTO = 6


class Clustered:
    """Unit vectors around overlapping centres, with most variance in a few directions."""

    def __init__(self, seed: int = 0, clusters: int = 40) -> None:
        self.rng = np.random.default_rng(seed)
        spectrum = np.arange(1, DIM + 1, dtype=np.float32) ** -0.5
        self.spectrum = spectrum / np.sqrt(np.mean(spectrum**2))
        centres = self.rng.standard_normal((clusters, DIM)).astype(np.float32) * self.spectrum
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(self, count: int, spread: float = 1.5) -> np.ndarray:
        which = self.rng.integers(0, len(self.centres), count)
        noise = self.rng.standard_normal((count, DIM)).astype(np.float32)
        vectors = self.centres[which] + noise * self.spectrum * (spread / np.sqrt(DIM))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def photos(vectors: np.ndarray, start: int) -> list[NewPhoto]:
    out = []
    for n, at in enumerate(range(0, len(vectors), PER_PHOTO)):
        part = vectors[at : at + PER_PHOTO]
        regions = [
            NewRegion(
                KIND_IMAGE if j == 0 else "object",
                (0.0, 0.0, 10.0, 8.0),
                v,
                None if j == 0 else "dog" if j % 2 else "cat",
                0.9,
            )
            for j, v in enumerate(part)
        ]
        out.append(NewPhoto(f"/p/{start + n}.jpg", 100, n, 10, 8, f"h{start + n}", "", regions))
    return out


@pytest.fixture(scope="module")
def source() -> Clustered:
    return Clustered()


def compressed_store(folder: Path, vectors: np.ndarray) -> Path:
    """A store of ``vectors`` (six a photo) with its compressed main file."""
    with Store(folder, create=True) as store:
        store.set_meta(embed_dim=DIM)
        store.commit_batch(photos(vectors, 0))
        store.compact_vectors("ivfpq")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, source: Clustered) -> Path:
    """An ivfpq store of 3,000 regions (read-only for the tests that use it)."""
    return compressed_store(tmp_path_factory.mktemp("ivfpq") / "index", source.draw(3000))


def recall_at_10(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)]))


def lists_of(index: object) -> object:
    inner = ivf.unwrapped(index)
    return faiss.downcast_InvertedLists(inner.invlists)


def test_search_is_mapped_and_reranked_exactly(built: Path, source: Clustered) -> None:
    queries = source.draw(60, spread=1.0)
    with Store(built) as store:
        live, from_file = store.load_vectors()
        exact = store.rebuild_vectors("flat")
        assert from_file and live.index_type == "ivfpq" and live.main.mapped
        assert isinstance(lists_of(live.main.index), faiss.OnDiskInvertedLists)
        scores, ids = live.search(queries, 10)
        want_scores, want_ids = exact.search(queries, 10)
        assert recall_at_10(ids, want_ids) >= 0.95
        # every returned score is the exact inner product, in exact order
        found, stored = store.vectors_of(ids.ravel())
        rows = stored[np.searchsorted(found, ids)]
        np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, rows), atol=1e-5)
        assert np.all(np.diff(scores, axis=1) <= 0)
        # a compressed search alone (PQ scores) is what re-ranking improves on
        live.main.exact = None
        pq_scores, _ = live.search(queries, 10)
        assert np.abs(pq_scores - want_scores).max() > np.abs(scores - want_scores).max()


@pytest.mark.parametrize(
    ("budget", "want"),
    [
        (1, [[0]]),
        (5, [[0]]),
        (6, [[0, 1]]),
        (7, [[0, 1, 2]]),
        (16, [[0, 1, 2]]),
        (99, [[0, 1, 2, 3]]),
    ],
)
def test_a_plan_reads_the_nearest_lists_until_they_hold_the_budget(
    budget: int, want: list[list[int]]
) -> None:
    quantizer = faiss.IndexFlatIP(4)
    quantizer.add(np.eye(4, dtype=np.float32))
    sizes = np.array([5, 1, 10, 3])
    query = np.array([[0.9, 0.5, 0.3, 0.1]], np.float32)  # lists 0, 1, 2, 3 in that order
    probes = ivf.plan_probes(quantizer, sizes, query, budget)
    assert probes.lists.tolist() == want
    np.testing.assert_allclose(probes.scores[0], query[0][: len(want[0])], atol=1e-6)


@pytest.mark.parametrize(
    ("count", "want"),
    [
        (3_000, 100_000),  # more than the index: it is read whole
        (1_000_000, 100_000),  # the floor: 10 %, where codes are cheap next to candidates
        (1_250_000, 100_000),
        (2_000_000, 160_000),  # 8 % from 1.25 million on
        (10_000_000, 800_000),
    ],
)
def test_the_default_scan_reads_a_share_of_the_codes_above_a_floor(count: int, want: int) -> None:
    assert IndexParams().scan_budget(count) == want


def test_each_query_of_a_batch_reads_its_own_lists() -> None:
    """Rows need different numbers of lists: the shorter ones end in -1, which FAISS skips."""
    quantizer = faiss.IndexFlatIP(2)
    quantizer.add(np.eye(2, dtype=np.float32))
    queries = np.array([[1.0, 0.2], [0.2, 1.0]], np.float32)
    probes = ivf.plan_probes(quantizer, np.array([10, 2]), queries, 4)
    assert probes.lists.tolist() == [[0, -1], [1, 0]]


@pytest.mark.parametrize("share", [0.05, 0.2])
def test_a_search_reads_only_its_planned_lists(
    built: Path, source: Clustered, share: float
) -> None:
    """With a share below the whole index, every candidate comes from a list the plan read,
    the plan stops at the first list that fills the budget, and a larger share finds more."""
    queries = source.draw(20, spread=1.0)
    params = IndexParams(ivfpq_scan=share, ivfpq_scan_min=0)
    with Store(built) as store:
        live, _ = store.load_vectors(params)
        main = live.main
        assert lists_of(main.index).prefetch_nthread == 0  # no read-ahead threads per search
        inner = ivf.unwrapped(main.index)
        sizes = ivf.list_sizes(main.index)
        budget = params.scan_budget(main.ntotal)
        probes = ivf.plan_probes(inner.quantizer, sizes, queries, budget)
        _, candidates = main.search(queries, 50)
        found, vectors = store.vectors_of(candidates.ravel())
        _, list_of = inner.quantizer.search(vectors, 1)
        exact = store.rebuild_vectors("flat")
        full, _ = store.load_vectors(IndexParams(ivfpq_scan=1.0))
    assert 0 < budget < main.ntotal
    owner = dict(zip(found.tolist(), list_of[:, 0].tolist(), strict=True))
    for row, ids in enumerate(candidates):
        read = probes.lists[row][probes.lists[row] >= 0]
        assert sizes[read].sum() >= budget > sizes[read[:-1]].sum()
        assert {owner[int(i)] for i in ids if i >= 0} <= set(read.tolist())
    want = exact.search(queries, 10)[1]
    assert recall_at_10(full.search(queries, 10)[1], want) >= recall_at_10(
        live.search(queries, 10)[1], want
    )


@pytest.mark.parametrize("rows", [0, 1, 1000])
def test_rerank_scores_are_the_inner_products_without_blas(rows: int) -> None:
    """Re-ranking scores candidates with einsum on the calling thread (no BLAS threads left
    spinning on the cores the next FAISS scan needs), equal to the matrix product."""
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    query = rng.standard_normal(DIM).astype(np.float32)
    scores = ivf.one_thread_scores(vectors, query)
    assert scores.dtype == np.float32 and scores.shape == (rows,)
    np.testing.assert_allclose(scores, vectors @ query, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("filtered", [False, True])
def test_a_long_scan_splits_one_query_over_the_cores(
    built: Path, source: Clustered, filtered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past PARALLEL_SCAN_MIN codes a single query's lists are searched in parallel (FAISS
    parallel_mode 1), with the same answer as one thread; shorter scans keep one thread."""
    queries = source.draw(12, spread=1.0)
    allowed = np.arange(1, 3001, 2, dtype=np.int64) if filtered else None
    with Store(built) as store:
        live, _ = store.load_vectors()
        main = live.main
        inner = ivf.unwrapped(main.index)
        one = [live.search(q[None], 10, allowed=allowed) for q in queries]
        assert inner.parallel_mode == 0
        monkeypatch.setattr(ivf, "PARALLEL_SCAN_MIN", 1)
        split = [live.search(q[None], 10, allowed=allowed) for q in queries]
        assert inner.parallel_mode == 1
        live.search(queries, 10, allowed=allowed)  # a batch: its queries in parallel again
        assert inner.parallel_mode == 0
    for (s1, i1), (s2, i2) in zip(one, split, strict=True):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_filters_allowed_ids_and_exact_subsets(built: Path, source: Clustered) -> None:
    queries = source.draw(20, spread=1.0)
    with Store(built) as store:
        live, _ = store.load_vectors()
        exact = store.rebuild_vectors("flat")
        allowed = np.arange(1, 3001, 3, dtype=np.int64)
        scores, ids = live.search(queries, 10, allowed=allowed)
        assert np.isin(ids, allowed).all()
        assert recall_at_10(ids, exact.search(queries, 10, allowed=allowed)[1]) >= 0.95
        subset = np.arange(5, 400, 7, dtype=np.int64)
        got_ids, got = live.scores_for(queries[0], subset)
        want_ids, want = exact.scores_for(queries[0], subset)
        np.testing.assert_array_equal(np.sort(got_ids), np.sort(want_ids))
        np.testing.assert_allclose(got[np.argsort(got_ids)], want[np.argsort(want_ids)], atol=1e-6)


def test_tombstones_delta_and_compaction_reuse_the_quantizers(
    tmp_path: Path, source: Clustered, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "index"
    queries = source.draw(20, spread=1.0)
    with Store(index_dir, create=True) as store:
        store.set_meta(embed_dim=DIM)
        store.commit_batch(photos(source.draw(1800), 0))
        store.compact_vectors("ivfpq")
        before = store.load_vectors()[0]
        trained = faiss.vector_to_array(ivf.unwrapped(before.main.index).pq.centroids)
        # delete the photos holding the best hits; add new photos that match the queries
        near = set(before.search(queries, 3)[1].ravel().tolist())
        victims = [p.id for p, regions in store.iter_photos() if {r.id for r in regions} & near]
        removed = store.commit_batch([], remove_photo_ids=victims).removed_ids
        added = store.commit_batch(photos(queries[:12], 5000)).added_ids
        live, _ = store.load_vectors()
        assert len(live.tombstones) == len(removed) > 0 and live.delta.ntotal == 12
        _, ids = live.search(queries, 10)
        assert not np.isin(ids, removed).any()
        with monkeypatch.context() as patch:  # many deletions: skipped inside FAISS instead
            patch.setattr(vector_index, "EXCLUDED_DROP_MAX", 0)
            np.testing.assert_array_equal(live.search(queries, 10)[1], ids)
        assert np.isin(np.asarray(added), ids).all()  # each added vector is its query's best
        want = store.rebuild_vectors("flat").search(queries, 10)[1]
        assert recall_at_10(ids, want) >= 0.95
        compacted = store.compact_vectors("ivfpq")
        assert compacted.ntotal == store.count_regions()
        again = faiss.vector_to_array(ivf.unwrapped(compacted.index).pq.centroids)
        np.testing.assert_array_equal(again, trained)  # added without retraining
        after, from_file = store.load_vectors()
        assert from_file and after.pending == 0
        np.testing.assert_array_equal(after.search(queries, 10)[1], ids)


def test_a_file_from_before_in_an_id_map_searches_alike_and_is_upgraded(
    tmp_path: Path, source: Clustered
) -> None:
    """Compressed files used to sit in an ``IndexIDMap2``; their lists now hold region ids.

    An id-mapped file still loads and answers as the bare one (filtered too), and the next
    compaction writes it bare, reusing its quantizers.
    """
    folder = compressed_store(tmp_path / "index", source.draw(1800))
    queries = source.draw(20, spread=1.0)
    with Store(folder) as store:
        path = Path(store.faiss_path)
        assert path.read_bytes()[:4] == b"IwPQ"  # bare: no id map around it
        bare, _ = store.load_vectors()
        assert isinstance(bare.main.index, faiss.IndexIVFPQ)
        held = np.sort(bare.main.ids())
        assert np.array_equal(held, np.sort(np.concatenate([i for i, _ in store.iter_vectors()])))
        allowed = held[::3]
        want, want_filtered = bare.search(queries, 10), bare.search(queries, 10, allowed)
        assert np.isin(want_filtered[1], allowed).all()
        trained = ivf.emptied(str(path), DIM, len(held))
        older = faiss.IndexIDMap2(trained)  # the same quantizers and codes, as files were
        ivf.fill(older, store.iter_vectors())
        bare_bytes = path.stat().st_size
        store.save_vectors(vector_index.VectorIndex(older, "ivfpq"), store.generation)
        assert path.read_bytes()[:4] == b"IxM2"
        assert path.stat().st_size - bare_bytes >= 8 * len(held)  # the id map's copy of the ids
        mapped, from_file = store.load_vectors()
        assert from_file and isinstance(mapped.main.index, faiss.IndexIDMap2)
        assert mapped.main.mapped and np.array_equal(np.sort(mapped.main.ids()), held)
        for got, expected in (
            (mapped.search(queries, 10), want),
            (mapped.search(queries, 10, allowed), want_filtered),
        ):
            np.testing.assert_array_equal(got[1], expected[1])
            np.testing.assert_allclose(got[0], expected[0], atol=1e-6)
        centroids = faiss.vector_to_array(ivf.unwrapped(mapped.main.index).pq.centroids)
        store.compact_vectors("ivfpq")
        assert path.read_bytes()[:4] == b"IwPQ" and path.stat().st_size == bare_bytes
        upgraded, _ = store.load_vectors()
        again = faiss.vector_to_array(ivf.unwrapped(upgraded.main.index).pq.centroids)
        np.testing.assert_array_equal(again, centroids)
        np.testing.assert_array_equal(upgraded.search(queries, 10)[1], want[1])


def test_doctor_checks_an_ivfpq_index(built: Path) -> None:
    with Store(built) as store:
        health = check(store)
    assert health.consistent and not health.problems, health.problems
    assert health.faiss_kind == "ivfpq" and health.vectors == 3000
    assert health.vectors_file == "fresh"


def test_auto_keeps_todays_types_below_the_compressed_size() -> None:
    assert choose_index_type("auto", 1000) == "flat"
    assert choose_index_type("auto", AUTO_HNSW_MIN) == "hnsw"
    assert choose_index_type("auto", AUTO_IVFPQ_MIN - 1) == "hnsw"
    assert choose_index_type("auto", AUTO_IVFPQ_MIN) == "ivfpq"
    assert choose_index_type("ivfpq", 10) == "ivfpq"
    assert RERANK_CANDIDATES >= 100


def test_too_few_vectors_for_a_quantizer_get_an_exact_index(
    tmp_path: Path, source: Clustered
) -> None:
    with Store(tmp_path / "index", create=True) as store:
        store.set_meta(embed_dim=DIM)
        store.commit_batch(photos(source.draw(IVFPQ_MIN_VECTORS - 4), 0))
        assert store.compact_vectors("ivfpq").index_type == "flat"
        store.commit_batch(photos(source.draw(12), 900))
        index = store.compact_vectors("ivfpq")
        assert index.index_type == "ivfpq" and index.ntotal == IVFPQ_MIN_VECTORS + 8


def test_doctor_retrains_the_quantizers_when_new_vectors_drift(tmp_path: Path) -> None:
    """Same clusters quantize as well as held-out vectors did; new clusters set off a retrain."""
    source = Clustered(seed=11)
    folder = tmp_path / "index"
    with Store(folder, create=True) as store:
        store.set_meta(embed_dim=DIM, faiss_kind_requested="ivfpq")  # as index --faiss-index
        store.commit_batch(photos(source.draw(3000), 0))
        store.compact_vectors("ivfpq")
        baseline = store.get_meta("ivfpq_train_error")
        assert baseline is not None and float(baseline) > 0
        store.commit_batch(photos(source.draw(2100), 5000))
        same = check(store)
    assert same.quantizer_drift == pytest.approx(1.0, abs=0.1) and not same.drifted
    assert not any("retrained" in action for action in repair(str(folder)))
    with Store(folder) as store:
        assert store.get_meta("ivfpq_train_error") == baseline  # quantizers were reused
        store.commit_batch(photos(Clustered(seed=99).draw(2100), 9000))
        drifted = check(store)
    assert drifted.drifted and drifted.quantizer_drift is not None
    assert drifted.quantizer_drift > DRIFT_RATIO
    actions = repair(str(folder))
    assert any("retrained" in action for action in actions)
    with Store(folder) as store:
        after = check(store)
        assert store.get_meta("ivfpq_train_error") != baseline
    assert not after.drifted and after.vectors_pending == 0 and after.faiss_kind == "ivfpq"
