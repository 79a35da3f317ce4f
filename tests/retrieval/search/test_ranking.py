"""The rankings: FAISS neighbours asked for in growing numbers and an exact subset give the
same grouped results; skips and score floors apply to both."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.store import Store
from indexer.store.vectors import IndexParams
from retrieval.search.fields import FieldError
from retrieval.search.filters import SearchFilters, matching_region_ids
from retrieval.search.ranking import Skip, rank_exact, rank_expanding, rank_text_lines
from tests.fixtures.store_records import DIM, random_photo

NO_SKIP = Skip(None, None, None)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("ranking")
    store = Store(folder, create=True)
    store.set_meta(embed_dim=DIM)
    store.commit_batch([random_photo(f"p{i}", i, objects=3) for i in range(12)])
    return store


def _both(store: Store, query: np.ndarray, top_k: int, group: str, skip: Skip, kind=None):
    vectors, _ = store.load_vectors(IndexParams())
    expanding = rank_expanding(
        store, lambda k: vectors.search(query[None, :], k), vectors.ntotal, top_k, kind, group, skip
    )
    return vectors, expanding


def _exact(store: Store, query: np.ndarray, top_k: int, group: str, skip: Skip):
    with store.session() as s:
        ids, photos = matching_region_ids(s, SearchFilters(folders=["/photos"]), None)
    vectors, _ = store.load_vectors(IndexParams())
    found, scores = vectors.scores_for(query, ids)
    at = np.searchsorted(ids, found)
    return rank_exact(store, found, photos[at], scores, top_k, group, skip)


def _query(seed: int = 99) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return q / np.linalg.norm(q)


@pytest.mark.parametrize("group", ["photo", "object"])
@pytest.mark.parametrize("top_k", [1, 5, 40])
def test_faiss_and_exact_rankings_agree(store: Store, group: str, top_k: int) -> None:
    query = _query()
    _, expanding = _both(store, query, top_k, group, NO_SKIP)
    exact = _exact(store, query, top_k, group, NO_SKIP)
    assert [r.region_id for r in expanding] == [r.region_id for r in exact]
    assert [r.matches for r in expanding] == [r.matches for r in exact]
    assert [r.rank for r in expanding] == list(range(1, len(expanding) + 1))
    scores = [r.score for r in expanding]
    assert scores == sorted(scores, reverse=True)
    if group == "photo":
        assert len({r.photo_id for r in expanding}) == len(expanding)  # one result per photo
        assert len(expanding) == min(top_k, 12)
    else:
        assert len(expanding) == min(top_k, 48)


def test_skips_and_score_floors_apply_to_both(store: Store) -> None:
    query = _query(5)
    _, plain = _both(store, query, 5, "object", NO_SKIP)
    first = plain[0]
    skip = Skip(first.region_id, None, None)
    _, without = _both(store, query, 5, "object", skip)
    assert first.region_id not in {r.region_id for r in without}
    assert [r.region_id for r in without] == [
        r.region_id for r in _exact(store, query, 5, "object", skip)
    ]
    floor = Skip(None, first.photo_id, plain[2].score)
    for found in (
        _both(store, query, 5, "object", floor)[1],
        _exact(store, query, 5, "object", floor),
    ):
        assert all(r.score >= plain[2].score and r.photo_id != first.photo_id for r in found)


def test_kind_keeps_object_crops_only(store: Store) -> None:
    _, found = _both(store, _query(3), 6, "object", NO_SKIP, kind="object")
    assert found and all(r.kind == "object" for r in found)


def test_text_ranking_refuses_a_bad_shape(store: Store) -> None:
    with pytest.raises(FieldError, match="ocr"):
        rank_text_lines(store, SearchFilters(), 5)
    with pytest.raises(FieldError, match="group"):
        rank_text_lines(store, SearchFilters(ocr="bakery"), 5, "album")  # type: ignore[arg-type]
    assert rank_text_lines(store, SearchFilters(ocr="bakery"), 5) == []  # no text read
