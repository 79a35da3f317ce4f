"""Finding words read in photos: inside words, any case, accents folded, ranked, filtered."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import QueryError
from indexer.media.metadata import PhotoMetadata
from indexer.store import KIND_IMAGE, KIND_OBJECT, NewPhoto, NewRegion, NewText, Store
from retrieval import Searcher
from retrieval.search import SearchFilters

DIM = 8


def _photo(path: str, lines: list[tuple[str, float]], *, taken: str, label: str | None = None):
    rng = np.random.default_rng(abs(hash(path)) % 2**32)
    vec = rng.normal(size=DIM).astype(np.float32)
    regions = [NewRegion(KIND_IMAGE, (0, 0, 200, 100), vec / np.linalg.norm(vec))]
    if label:
        regions.append(
            NewRegion(KIND_OBJECT, (5, 5, 50, 50), vec / np.linalg.norm(vec), label, 0.9)
        )
    texts = [
        NewText((10.0 * i, 10.0, 10.0 * i + 40, 30.0), text, conf)
        for i, (text, conf) in enumerate(lines)
    ]
    return NewPhoto(
        path=path,
        size=1,
        mtime_ns=1,
        width=200,
        height=100,
        content_hash=path[-12:],
        caption="1 " + label if label else "",
        regions=regions,
        metadata=PhotoMetadata(taken_at=taken, date_source="exif-original"),
        texts=texts,
        text_engine="test-engine",
    )


@pytest.fixture(scope="module")
def text_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("text-index")
    with Store(index_dir, create=True) as store:
        store.set_meta(embed_dim=DIM, clip_model="none")
        store.commit_batch(
            [
                _photo("/p/shops/bakeryshop.jpg", [("BAKERYSHOP", 0.99)], taken="2021-05-01T10:00:00"),
                _photo("/p/shops/bakery.jpg", [("THE BAKERY", 0.70), ("OPEN", 0.9)], taken="2023-05-01T10:00:00", label="car"),
                _photo("/p/street/since.jpg", [("SINCE2019", 0.95)], taken="2019-01-01T10:00:00"),
                _photo("/p/street/cafe.jpg", [("Café de la Gare", 0.93)], taken="2022-01-01T10:00:00"),
                _photo("/p/street/route.jpg", [("ROUTE 66", 0.8), ("ROUTE", 0.6)], taken="2020-01-01T10:00:00"),
                _photo("/p/street/plain.jpg", [], taken="2020-01-01T10:00:00"),
            ]
        )  # fmt: skip
    return index_dir


def _find(index: Path, words: str, **kw) -> list:
    with Searcher(index, load_encoder=False) as searcher:
        return searcher.search(ocr=words, **kw)


def _names(results: list) -> list[str]:
    return [Path(r.image).name for r in results]


def test_words_are_found_inside_words_in_any_case_with_accents_folded(text_index: Path) -> None:
    assert set(_names(_find(text_index, "bake"))) == {"bakery.jpg", "bakeryshop.jpg"}
    assert _names(_find(text_index, "2019")) == ["since.jpg"]
    assert _names(_find(text_index, "CAFE")) == ["cafe.jpg"]
    assert _names(_find(text_index, "gâre")) == ["cafe.jpg"]
    assert _names(_find(text_index, "66")) == ["route.jpg"]  # shorter than a trigram
    assert _names(_find(text_index, "zebra")) == []


def test_results_carry_the_line_its_box_and_the_photo(text_index: Path) -> None:
    (hit,) = _find(text_index, "cafe")
    data = hit.to_dict()
    assert data["kind"] == "text" and data["text"] == "Café de la Gare"
    assert data["box"] == [0.0, 10.0, 40.0, 30.0] and data["confidence"] == 0.93
    assert data["region_id"] is None and data["width"] == 200
    assert data["taken_at"] == "2022-01-01T10:00:00" and data["image"].endswith("cafe.jpg")
    json.dumps(data)


def test_whole_words_rank_above_parts_of_words_then_confidence(text_index: Path) -> None:
    hits = _find(text_index, "bakery")
    assert _names(hits) == ["bakery.jpg", "bakeryshop.jpg"]  # 0.70 whole beats 0.99 part
    assert hits[0].score == 1.0 and hits[1].score == 0.5
    lines = _find(text_index, "route", group="object")
    assert [h.text for h in lines] == ["ROUTE 66", "ROUTE"]  # both whole: confidence
    (photo,) = _find(text_index, "route")
    assert photo.matches == 2 and photo.text == "ROUTE 66"


def test_every_word_must_be_in_the_line(text_index: Path) -> None:
    assert _names(_find(text_index, "route 66")) == ["route.jpg"]
    assert _names(_find(text_index, "cafe gare")) == ["cafe.jpg"]
    assert _find(text_index, "bakery gare") == []


def test_other_filters_restrict_the_photos(text_index: Path) -> None:
    after = SearchFilters(after=2022)
    assert _names(_find(text_index, "bake", filters=after)) == ["bakery.jpg"]
    within = SearchFilters(folders=["/p/street"])
    # "e" stands alone in none of these lines: ranked by confidence.
    assert _names(_find(text_index, "e", filters=within)) == ["since.jpg", "cafe.jpg", "route.jpg"]
    assert _names(_find(text_index, "bake", filters=SearchFilters(labels=["car"]))) == [
        "bakery.jpg"
    ]


def test_with_a_query_the_words_filter_the_photos_ranked(text_index: Path) -> None:
    with Searcher(text_index, load_encoder=False) as searcher:
        query = np.ones(DIM, np.float32) / np.sqrt(DIM)
        hits = searcher.search_vector(query, 10, filters=SearchFilters(ocr="bake"))
        assert set(_names(hits)) == {"bakery.jpg", "bakeryshop.jpg"}
        assert all(h.kind in ("image", "object") for h in hits)
        both = SearchFilters(ocr="bake", before=2022)
        assert _names(searcher.search_vector(query, 10, filters=both)) == ["bakeryshop.jpg"]
        nothing = searcher.search_vector(query, 10, filters=SearchFilters(ocr="zebra"))
        assert nothing == []


def test_match_covers_the_text_read_in_photos(text_index: Path) -> None:
    with Searcher(text_index, load_encoder=False) as searcher:
        query = np.ones(DIM, np.float32) / np.sqrt(DIM)
        hits = searcher.search_vector(query, 10, filters=SearchFilters(match="gare"))
        assert _names(hits) == ["cafe.jpg"]
        both = searcher.search_vector(query, 10, filters=SearchFilters(match="car open"))
        assert both == []  # "car" is a label, "open" is read text: neither side has both
        labelled = searcher.search_vector(query, 10, filters=SearchFilters(match="car"))
        assert set(_names(labelled)) == {"bakery.jpg"}


@pytest.mark.parametrize("words", ["", "  ", "!!!"])
def test_no_words_is_a_query_error(words: str) -> None:
    with pytest.raises(QueryError, match="ocr:"):
        SearchFilters(ocr=words)
