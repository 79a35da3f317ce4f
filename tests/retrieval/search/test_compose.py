"""Richer queries: negatives, text + example, more like a region or photo, grouping by object."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import QueryError
from indexer.store import Store, decode_vector
from retrieval import Searcher, SearchFilters
from retrieval.search.compose import blend, push_away
from tests.fixtures import Models, cli_search, make_indexer
from tests.fixtures.exif_photos import make_library


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Path:
    root = make_library(tmp_path_factory.mktemp("library"))
    index_dir = tmp_path_factory.mktemp("compose") / "index"
    make_indexer(models, index_dir).index([root])
    return index_dir


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_push_away_lowers_similarity_to_each_negative() -> None:
    rng = np.random.default_rng(0)
    q, n1, n2 = (unit(rng.standard_normal(16)).astype(np.float32) for _ in range(3))
    moved = push_away(q, [n1, n2], 0.5)
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)
    assert moved @ n1 < q @ n1 and moved @ n2 < q @ n2
    np.testing.assert_allclose(moved, unit(q - 0.5 * (n1 + n2)), atol=1e-6)
    np.testing.assert_array_equal(push_away(q, [n1], 0.0), q)


def test_blend_is_the_normalised_weighted_sum() -> None:
    t, e = np.eye(4, dtype=np.float32)[:2]
    np.testing.assert_allclose(blend(t, e, 0.25), unit(0.75 * t + 0.25 * e), atol=1e-6)
    np.testing.assert_allclose(blend(t, e, 1.0), e, atol=1e-6)
    with pytest.raises(QueryError, match="image_weight"):
        blend(t, e, 1.5)
    with pytest.raises(QueryError, match="cancels"):
        blend(t, -t, 0.5)


def test_negative_prompts_change_the_query(index_dir: Path, models: Models) -> None:
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        plain = searcher.query_vector(text="a cat")
        negative = searcher.query_vector(text="a dog")
        composed = searcher.compose_query(text="a cat", negatives=["a dog"], not_weight=0.7)
        np.testing.assert_allclose(composed, push_away(plain, [negative], 0.7), atol=1e-5)
        results = searcher.search(text="a cat", negatives=["a dog"], not_weight=0.7, top_k=5)
        expected = searcher.search_vector(composed, 5)
    assert [r.region_id for r in results] == [r.region_id for r in expected]


def test_image_and_text_combined(index_dir: Path, models: Models) -> None:
    with Store(index_dir) as store:
        photo = next(p for p, _ in store.iter_photos() if p.path.endswith("beach_0.jpg"))
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        t = searcher.query_vector(text="at sunset")
        i = searcher.query_vector(image=photo.path)
        composed = searcher.compose_query(text="at sunset", image=photo.path, image_weight=0.3)
        np.testing.assert_allclose(composed, blend(t, i, 0.3), atol=1e-5)
        results = searcher.search(text="at sunset", image=photo.path, image_weight=0.3, top_k=3)
    assert results


def test_like_photo_and_like_region(index_dir: Path, models: Models) -> None:
    with Store(index_dir) as store:
        photo, regions = next(
            (p, r) for p, r in store.iter_photos() if p.path.endswith("city_0.jpg")
        )
        dim = store.dim()
    obj = next(r for r in regions if r.kind == "object")
    whole = next(r for r in regions if r.kind == "image")
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        like_photo = searcher.search(like_photo=photo.id, top_k=5)
        like_region = searcher.search(like_region=obj.id, top_k=5, group="object")
        by_vector = searcher.search_vector(decode_vector(whole.vector, dim), 6)
    # The photo itself is left out; the rest is the ranking of its whole-photo vector.
    assert photo.id not in {r.photo_id for r in like_photo}
    assert [r.photo_id for r in like_photo] == [
        r.photo_id for r in by_vector if r.photo_id != photo.id
    ][:5]
    assert obj.id not in {r.region_id for r in like_region}
    assert all(r.kind == "object" for r in like_region)


def test_unknown_ids_are_query_errors(index_dir: Path, models: Models) -> None:
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        with pytest.raises(QueryError, match="region 987654"):
            searcher.search(like_region=987654)
        with pytest.raises(QueryError, match="photo 987654"):
            searcher.search(like_photo=987654)


def test_group_object_lists_every_crop(index_dir: Path, models: Models) -> None:
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        rows = searcher.search(text="a cat", top_k=15, group="object")
        photos = searcher.search(text="a cat", top_k=15)
    assert len(rows) == 15 and all(r.kind == "object" for r in rows)
    assert len({r.photo_id for r in rows}) < len(rows), "several crops of one photo"
    assert [r.rank for r in rows] == list(range(1, 16))
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    assert len({r.photo_id for r in photos}) == len(photos)


def test_group_object_with_a_rare_filter(index_dir: Path, models: Models) -> None:
    with Store(index_dir) as store:
        photo, regions = next(
            (p, r) for p, r in store.iter_photos() if p.path.endswith("IMG_0001.heic")
        )
    objects = [r.id for r in regions if r.kind == "object"]
    folder = str(Path(photo.path).parent)
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        rows = searcher.search(
            text="a cat", top_k=50, group="object", filters=SearchFilters(folders=(folder,))
        )
    assert sorted(r.region_id for r in rows) == sorted(objects)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "a cat", "negatives": [" "]}, "negatives:"),
        ({"text": "a cat", "not_weight": -1, "negatives": ["a dog"]}, "not_weight:"),
        ({"text": "a cat", "like_photo": 1, "like_region": 1}, "one example"),
        ({"text": "a cat", "group": "folder"}, "group:"),
        ({"text": "a cat", "group": "object", "kind": "image"}, "group: object"),
        ({}, "give a text query"),
        ({"negatives": ["a dog"]}, "give a text query"),
    ],
)
def test_bad_compositions(index_dir: Path, models: Models, kwargs: dict, message: str) -> None:
    with (
        Searcher(index_dir, embedder=models.embedder) as searcher,
        pytest.raises(QueryError, match=message),
    ):
        searcher.search(**kwargs)


def test_cli_richer_queries(index_dir: Path, models: Models) -> None:
    result = cli_search(models, index_dir, "a cat", "--not", "a dog", "--not", "a toy", "--json")
    assert result.exit_code == 0, result.output
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        api = searcher.search(text="a cat", negatives=["a dog", "a toy"], top_k=10)
    assert [h["region_id"] for h in json.loads(result.stdout)] == [r.region_id for r in api]
    result = cli_search(models, index_dir, "a cat", "--group", "object", "-k", "12", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 12
    result = cli_search(models, index_dir, "--like-photo", str(api[0].photo_id), "--json")
    assert result.exit_code == 0, result.output
    assert api[0].photo_id not in {h["photo_id"] for h in json.loads(result.stdout)}


@pytest.mark.parametrize(
    "args",
    [
        ["a cat", "--not", ""],
        ["a cat", "--like-region", "987654"],
        ["--like-photo", "1", "--like-region", "1"],
        ["a cat", "--group", "object", "--photos-only"],
        ["a cat", "--image-weight", "0.3"],
    ],
)
def test_cli_bad_queries_one_line(index_dir: Path, models: Models, args: list[str]) -> None:
    result = cli_search(models, index_dir, *args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())  # one message (the terminal may wrap it)
    assert message.startswith("error:") and message.count("error:") == 1, result.stderr
