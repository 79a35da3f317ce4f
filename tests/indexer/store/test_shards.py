"""Shards of a compressed index (:mod:`indexer.store.shards`), searched in-process.

Shards share the quantizers of the store's IVF-PQ file, so merging their PQ candidates and
re-ranking them gives exactly the answer of the whole index; these tests check that on a
real store (real FAISS files, memory-mapped), for one to three shards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import UsageError
from indexer.store import Store
from indexer.store.shards import (
    MANIFEST,
    Shard,
    ShardProbes,
    ShardSet,
    merge_candidates,
    shard_of,
    sharded_search,
    write_shards,
)
from indexer.store.vectors import IndexParams
from tests.indexer.store.test_ivf import DIM, Clustered, compressed_store, photos


@pytest.fixture(scope="module")
def source() -> Clustered:
    return Clustered(seed=4)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, source: Clustered) -> Path:
    """A 3,000-region store with its compressed main file."""
    return compressed_store(tmp_path_factory.mktemp("shards") / "index", source.draw(3000))


@pytest.mark.parametrize("count", [1, 2, 3])
def test_shards_split_the_regions_by_id(index_dir: Path, tmp_path: Path, count: int) -> None:
    with Store(index_dir) as store:
        shard_set = write_shards(store, count, tmp_path)
        all_ids = np.concatenate([ids for ids, _ in store.iter_vectors()])
        generation = store.generation
    assert ShardSet.read(tmp_path) == shard_set
    assert shard_set.generation == generation and shard_set.dim == DIM
    held = [np.sort(Shard(path).ids()) for path in shard_set.paths]
    for number, ids in enumerate(held):
        assert len(ids) and np.all(shard_of(ids, count) == number)
    assert np.array_equal(np.sort(np.concatenate(held)), np.sort(all_ids))
    assert json.loads((tmp_path / MANIFEST).read_text())["files"] == [
        p.name for p in shard_set.paths
    ]


@pytest.mark.parametrize(
    ("count", "params"),
    [
        (1, IndexParams()),
        (2, IndexParams()),
        (3, IndexParams()),
        (2, IndexParams(ivfpq_scan=0.1, ivfpq_scan_min=0)),  # a tenth of the lists' codes
        (3, IndexParams(ivfpq_scan=0.3, ivfpq_scan_min=0, ivfpq_candidates=50)),
    ],
)
def test_sharded_answer_equals_the_whole_index(
    index_dir: Path, tmp_path: Path, source: Clustered, count: int, params: IndexParams
) -> None:
    """The shards read the lists the whole index would read (planned once from the summed
    list sizes), so their merged candidates and answers are the whole index's."""
    queries = source.draw(40, spread=1.6)
    with Store(index_dir) as store:
        shard_set = write_shards(store, count, tmp_path)
        whole, _ = store.load_vectors(params)
        assert whole.index_type == "ivfpq"
        want_scores, want_ids = whole.search(queries, 10)
        shards = [Shard(path) for path in shard_set.paths]
        probes = ShardProbes.of(shards, params)
        assert probes.budget == params.scan_budget(store.count_regions())
        got_scores, got_ids = sharded_search(
            shards, queries, 10, store.vectors_of, probes, candidates=params.ivfpq_candidates
        )
        # the PQ candidates themselves: the same regions, with the same PQ scores
        wide = params.ivfpq_candidates
        plan = probes.plan(queries)
        merged = merge_candidates([s.candidates(queries, wide, plan) for s in shards], wide)
        whole.main.exact = None
        pq_scores, pq_ids = whole.main.search(queries, wide)
    assert np.array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-6)
    for row in range(len(queries)):
        assert set(merged[1][row].tolist()) == set(pq_ids[row].tolist())
        held = pq_ids[row] >= 0
        np.testing.assert_allclose(merged[0][row][held], pq_scores[row][held], atol=1e-5)
    exact = queries @ np.stack([store_vector(index_dir, i) for i in got_ids[0]]).T
    np.testing.assert_allclose(got_scores[0], exact[0], atol=1e-5)  # exact cosines


def store_vector(index_dir: Path, region_id: int) -> np.ndarray:
    with Store(index_dir) as store:
        return store.vectors_of(np.array([region_id]))[1][0]


def test_merge_keeps_the_best_over_shards_and_drops_padding() -> None:
    a = (np.array([[0.9, 0.5, -1.0]], np.float32), np.array([[4, 8, -1]]))
    b = (np.array([[0.7, 0.6, 0.1]], np.float32), np.array([[3, 5, 7]]))
    scores, ids = merge_candidates([a, b], 4)
    assert ids.tolist() == [[4, 3, 5, 8]]
    assert scores[0].tolist() == pytest.approx([0.9, 0.7, 0.6, 0.5])


@pytest.mark.parametrize("count", [0, -2])
def test_a_shard_count_below_one_is_refused(index_dir: Path, tmp_path: Path, count: int) -> None:
    with Store(index_dir) as store, pytest.raises(UsageError, match="at least one shard"):
        write_shards(store, count, tmp_path)
    assert not (tmp_path / MANIFEST).exists()


def test_a_store_too_small_to_compress_is_refused(tmp_path: Path, source: Clustered) -> None:
    with Store(tmp_path / "small", create=True) as store:
        store.set_meta(embed_dim=DIM)
        store.commit_batch(photos(source.draw(12), 0))
        with pytest.raises(UsageError, match="holds 12"):
            write_shards(store, 2, tmp_path / "shards")
