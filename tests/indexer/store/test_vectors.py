"""VectorIndex: FAISS ids are region ids; files are written atomically; kinds by size."""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexer.errors import UsageError
from indexer.store.vectors import AUTO_HNSW_MIN, Exclusion, VectorIndex, choose_index_type


def unit(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_search_returns_region_ids(kind: str) -> None:
    vecs = unit(2000)
    ids = np.arange(1000, 3000, dtype=np.int64)
    index = VectorIndex.build(ids, vecs, 16, kind)
    assert index.ntotal == 2000
    scores, found = index.search(vecs[[5, 77]], 3)
    assert found[0, 0] == 1005 and found[1, 0] == 1077
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_remove_and_add_on_flat() -> None:
    index = VectorIndex.empty(16)
    vecs = unit(10)
    index.add(np.arange(10), vecs)
    assert index.remove(np.array([3, 4])) == 2
    assert index.ntotal == 8 and 3 not in set(index.ids().tolist())
    _, found = index.search(vecs[3], 1)
    assert found[0, 0] != 3


def test_hnsw_cannot_remove() -> None:
    index = VectorIndex.build(np.arange(10), unit(10), 16, "hnsw")
    with pytest.raises(NotImplementedError):
        index.remove(np.array([1]))


def test_save_is_atomic_and_round_trips(tmp_path) -> None:
    path = str(tmp_path / "v.faiss")
    index = VectorIndex.build(np.arange(50), unit(50), 16, "flat")
    size = index.save(path)
    assert size == os.path.getsize(path)
    assert [p.name for p in tmp_path.iterdir()] == ["v.faiss"]  # no temp file left behind
    loaded = VectorIndex.load(path)
    assert loaded.ntotal == 50 and loaded.index_type == "flat"
    assert np.array_equal(np.sort(loaded.ids()), np.arange(50))


def test_truncated_file_raises(tmp_path) -> None:
    path = tmp_path / "v.faiss"
    VectorIndex.build(np.arange(50), unit(50), 16, "flat").save(str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises((RuntimeError, OSError)):
        VectorIndex.load(str(path))


def test_choose_index_type() -> None:
    assert choose_index_type("auto", 10) == "flat"
    assert choose_index_type("auto", AUTO_HNSW_MIN) == "hnsw"
    assert choose_index_type("ivf", 10) == "ivf"
    with pytest.raises(UsageError, match="Unknown FAISS index type 'lsh'"):
        choose_index_type("lsh", 10)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_scores_for_a_subset_are_exact(kind: str) -> None:
    vecs = unit(600)
    ids = np.arange(1000, 1600, dtype=np.int64)
    index = VectorIndex.build(ids, vecs, 16, kind)
    query = unit(1, seed=5)[0]
    subset = np.array([1599, 1003, 1200, 42, 5000], dtype=np.int64)  # 42, 5000: not indexed
    got_ids, scores = index.scores_for(query, subset)
    assert sorted(got_ids.tolist()) == [1003, 1200, 1599]
    np.testing.assert_allclose(scores, vecs[got_ids - 1000] @ query, atol=1e-5)


def test_scores_for_follows_adds_and_removes() -> None:
    vecs = unit(50)
    index = VectorIndex.build(np.arange(1, 51, dtype=np.int64), vecs, 16, "flat")
    query = vecs[0]
    assert index.scores_for(query, np.array([1], np.int64))[1][0] == pytest.approx(1.0, abs=1e-5)
    index.remove(np.array([1], np.int64))
    index.add(np.array([99], np.int64), vecs[1:2])  # not in id order any more
    ids, scores = index.scores_for(query, np.array([1, 2, 99], np.int64))
    assert ids.tolist() == [2, 99]
    np.testing.assert_allclose(scores, [vecs[1] @ query] * 2, atol=1e-5)


def test_selector_search_keeps_to_the_allowed_ids() -> None:
    vecs = unit(300)
    index = VectorIndex.build(np.arange(1, 301, dtype=np.int64), vecs, 16, "flat")
    allowed = np.arange(2, 301, 3, dtype=np.int64)
    scores, found = index.search(vecs[0][None, :], 10, allowed=allowed)
    expected = allowed[np.argsort(-(vecs[allowed - 1] @ vecs[0]))[:10]]
    assert found[0].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("ids", "k", "want"),
    [
        ([[5, 3, 9, 1]], 2, [[5, 9]]),  # 3 dropped, the next one moves up
        ([[3, 7, 7, -1]], 3, [[7, 7, -1]]),  # padding stays padding
        ([[7, 3], [3, 7]], 2, [[7, -1], [7, -1]]),  # too few left: padded
    ],
)
def test_exclusion_drops_ids_from_a_longer_answer(
    ids: list[list[int]], k: int, want: list[list[int]]
) -> None:
    found = np.array(ids, np.int64)
    scores = -np.arange(found.size, dtype=np.float32).reshape(found.shape)
    out_scores, out_ids = Exclusion(np.array([3, 3, 11])).drop((scores, found), k)
    np.testing.assert_array_equal(out_ids, want)
    kept = [scores[r][~np.isin(found[r], [3])][:k] for r in range(len(found))]
    for row, expected in zip(out_scores, kept, strict=True):
        np.testing.assert_array_equal(row[: len(expected)], expected)
        assert np.all(np.isneginf(row[len(expected) :]))
