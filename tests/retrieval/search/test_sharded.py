"""Sharded vector search over a real local Ray cluster (:mod:`retrieval.search.sharded`).

Two actors each memory-map one shard; the driver merges their candidates and re-ranks them
from SQLite. The answer must equal the whole compressed index's, id for id.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import ObjsearchError, StoreError
from indexer.store import Store
from indexer.store.shards import write_shards
from indexer.store.vectors import IndexParams
from retrieval.search.sharded import RayShardedSearch
from tests.indexer.store.test_ivf import Clustered, compressed_store, photos


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray_shards") / "index"
    return compressed_store(folder, Clustered(seed=6).draw(2400))


@pytest.mark.parametrize(
    "params",
    [IndexParams(), IndexParams(ivfpq_scan=0.1, ivfpq_scan_min=0, ivfpq_candidates=40)],
    ids=["whole-lists", "a-tenth-of-the-codes"],
)
def test_two_ray_shards_answer_as_one_index(
    ray_cluster: str, index_dir: Path, tmp_path: Path, params: IndexParams
) -> None:
    """Also when a search reads a tenth of the codes: the driver plans the lists for both
    actors from their summed list sizes, as the whole index plans its own."""
    queries = Clustered(seed=7).draw(30)
    with Store(index_dir) as store:
        shard_set = write_shards(store, 2, tmp_path / "shards")
        whole, _ = store.load_vectors(params)
        want = whole.search(queries, 10)
        with RayShardedSearch(store, shard_set, params=params, cpus_per_shard=0.5) as sharded:
            assert sum(sharded.counts) == store.count_regions()
            assert all(sharded.counts)
            got = sharded.search(queries, 10)
            one = sharded.search(queries[0], 5)  # a single query, fewer results
    assert np.array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    assert np.array_equal(one[1], want[1][:1, :5])


def test_shards_of_another_generation_are_refused(
    ray_cluster: str, index_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "index"
    with Store(index_dir) as store:
        shard_set = write_shards(store, 2, tmp_path / "shards")
    shutil.copytree(index_dir, copy)
    with Store(copy) as store:
        store.commit_batch(photos(Clustered(seed=8).draw(6), 9000))
        with pytest.raises(StoreError, match="write them again"):
            RayShardedSearch(store, shard_set)


def test_a_missing_shard_file_is_a_clear_error(
    ray_cluster: str, index_dir: Path, tmp_path: Path
) -> None:
    with Store(index_dir) as store:
        shard_set = write_shards(store, 2, tmp_path / "shards")
        shard_set.paths[1].unlink()
        with pytest.raises(ObjsearchError, match="A search shard failed"):
            RayShardedSearch(store, shard_set, cpus_per_shard=0.5)
