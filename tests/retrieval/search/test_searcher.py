"""Searcher: text and image queries, grouping by photo, kinds, query validation, freshness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from indexer.errors import QueryError, StoreError
from indexer.store import KIND_OBJECT, Store
from retrieval import Searcher, SearchResult
from tests.fixtures import Models, make_indexer, write_photo


@pytest.fixture(scope="module")
def searcher(tiny_index: Path, models: Models) -> Searcher:
    with Searcher(tiny_index, embedder=models.embedder) as s:  # type: ignore[arg-type]
        yield s


def test_text_search_groups_by_photo(searcher: Searcher, tiny_index: Path) -> None:
    results = searcher.search(text="a cat", top_k=3)
    assert [r.rank for r in results] == [1, 2, 3]
    assert all(isinstance(r, SearchResult) for r in results)
    assert len({r.photo_id for r in results}) == len(results)  # one row per photo
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    with Store(tiny_index) as store:
        rows = store.regions_with_photos([r.region_id for r in results])
    for r in results:
        region, photo = rows[r.region_id]
        assert (photo.path, region.kind) == (r.image, r.kind)


def test_kind_filter(searcher: Searcher) -> None:
    objects = searcher.search(text="a cat", top_k=4, kind="object")
    assert objects and all(r.kind == KIND_OBJECT and r.box is not None for r in objects)
    photos = searcher.search(text="a cat", top_k=4, kind="image")
    assert photos and all(r.kind == "image" and r.box is None for r in photos)


def test_image_query_finds_its_own_photo(searcher: Searcher, sample_photos_dir: Path) -> None:
    photo = sorted(p for p in sample_photos_dir.rglob("*.png"))[0]
    best = searcher.search(image=photo, top_k=1, kind="image")[0]
    assert best.image == str(photo)
    assert best.score == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "   "}, "empty"),
        ({}, "give a text query"),
        ({"text": "a cat", "image": "missing.jpg"}, "cannot use missing.jpg"),
        ({"text": "a cat", "top_k": 0}, "top_k:"),
        ({"text": "a cat", "kind": "crop"}, "kind"),
    ],
)
def test_bad_queries_are_query_errors(searcher: Searcher, kwargs: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        searcher.search(**kwargs)


def test_unreadable_query_image(searcher: Searcher, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(QueryError, match="query image"):
        searcher.search(image=bad)


def test_follows_new_commits(tiny_index: Path, models: Models, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(tiny_index, index_dir)
    with Searcher(index_dir, embedder=models.embedder) as searcher:  # type: ignore[arg-type]
        before = searcher.vectors.ntotal
        folder = tmp_path / "more"
        write_photo(folder / "new.jpg", seed=42)
        make_indexer(models, index_dir).index([folder], prune=False)
        assert searcher.vectors.ntotal > before
        hits = searcher.search(image=folder / "new.jpg", top_k=1, kind="image")
        assert hits[0].image == str(folder / "new.jpg")


def test_index_without_photos_searches_to_nothing(tmp_path: Path) -> None:
    """No committed photo yet (a first batch in flight): no model loads, no result, no error."""
    Store(tmp_path / "index", create=True).close()
    with Searcher(tmp_path / "index") as searcher:
        assert searcher.empty
        assert searcher.search(text="a cat") == []
        with pytest.raises(QueryError, match="empty"):
            searcher.search(text="  ")  # the query is still checked
        with pytest.raises(StoreError, match="no photos yet"):
            searcher.embedder  # noqa: B018 - no model is recorded to load


def test_text_queries_use_the_torch_free_encoder(tiny_index: Path, sample_photos_dir: Path) -> None:
    """Text first loads only the cached text tower; an image query then loads the image
    tower (from the conversion cache too, still without torch), and both give the full
    model's text results."""
    from indexer.models.clip import ClipEmbedder
    from indexer.models.converted import ConvertedEmbedder
    from indexer.models.text import OpenVinoTextEncoder

    with Store(tiny_index) as store:
        model = store.get_meta("clip_model")
    full = ClipEmbedder(model, "cpu", precision=None, backend="openvino")  # as Searcher does
    with Searcher(tiny_index, embedder=full) as reference:
        want = reference.search(text="a cat", top_k=4, group="object")
    with Searcher(tiny_index, device="cpu") as searcher:
        assert isinstance(searcher.text_encoder, OpenVinoTextEncoder)
        light = searcher.search(text="a cat", top_k=4, group="object")
        assert searcher._embedder is None  # nothing but the text tower so far
        photo = next(p for p in sorted(sample_photos_dir.rglob("*.png")))
        assert searcher.search(image=photo, top_k=1)
        assert isinstance(searcher.embedder, ConvertedEmbedder)
        again = searcher.search(text="a cat", top_k=4, group="object")
    for got in (light, again):
        assert [r.region_id for r in got] == [r.region_id for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)


def test_light_encoder_is_checked_against_the_index(tiny_index: Path, tmp_path: Path) -> None:
    """The probe check runs through the torch-free encoder too: other weights are refused."""
    copy = Path(shutil.copytree(tiny_index, tmp_path / "index"))
    with Store(copy) as store:
        probe = json.loads(store.get_meta("clip_probe"))
        store.set_meta(clip_probe=json.dumps([-v for v in probe]))
    with pytest.raises(StoreError, match="not comparable"):
        Searcher(copy, device="cpu")
