"""Results: what a result shows of an object region, a whole photo and a line of text."""

from __future__ import annotations

import pytest

from indexer.store import KIND_IMAGE, KIND_OBJECT, Photo, Region, TextRegion
from retrieval.search.ranking import Skip
from retrieval.search.results import ranked, result_for


def _photo(photo_id: int = 7) -> Photo:
    return Photo(
        id=photo_id,
        path=f"/photos/{photo_id}.jpg",
        size=1,
        mtime_ns=1,
        width=640,
        height=480,
        content_hash="h",
        caption="a cat on a mat",
        indexed_at=0.0,
        taken_at="2023-07-14T10:00:00",
    )


def _region(region_id: int, kind: str, label: str | None = "cat") -> Region:
    box = (10.123, 20.456, 110.0, 220.0) if kind == KIND_OBJECT else (0.0, 0.0, 640.0, 480.0)
    x1, y1, x2, y2 = box
    confidence = 0.87654 if kind == KIND_OBJECT else None
    return Region(
        id=region_id,
        photo_id=7,
        kind=kind,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        label=label if kind == KIND_OBJECT else None,
        confidence=confidence,
        vector=b"",
    )


def test_an_object_result_shows_its_rounded_box_label_and_photo() -> None:
    result = result_for(_region(3, KIND_OBJECT), _photo(), 0.1234567)
    assert (result.region_id, result.photo_id, result.label) == (3, 7, "cat")
    assert result.box == (10.12, 20.46, 110.0, 220.0)
    assert (result.score, result.confidence, result.text) == (0.123457, 0.8765, None)
    assert (result.caption, result.taken_at) == ("a cat on a mat", "2023-07-14T10:00:00")


def test_a_whole_photo_result_has_no_box_label_or_confidence() -> None:
    result = result_for(_region(4, KIND_IMAGE), _photo(), 0.5)
    assert (result.kind, result.box, result.label, result.confidence) == (
        KIND_IMAGE,
        None,
        None,
        None,
    )


def test_a_text_line_result_has_its_words_and_no_region_id() -> None:
    line = TextRegion(
        id=9,
        photo_id=7,
        x1=1.0,
        y1=2.0,
        x2=3.0,
        y2=4.0,
        text="BAKERY",
        folded="bakery",
        confidence=0.9,
    )
    result = result_for(line, _photo(), 1.0)
    assert (result.text, result.region_id, result.label) == ("BAKERY", None, None)
    assert result.to_dict()["box"] == [1.0, 2.0, 3.0, 4.0]


def test_ranked_numbers_results_in_order_with_their_matches() -> None:
    photo = _photo()
    results = ranked(
        [(_region(1, KIND_OBJECT), photo, 0.9, 3), (_region(2, KIND_IMAGE), photo, 0.5, 1)]
    )
    assert [(r.rank, r.region_id, r.matches) for r in results] == [(1, 1, 3), (2, 2, 1)]


@pytest.mark.parametrize(
    ("region", "photo", "excluded"),
    [(5, 1, True), (6, 8, True), (6, 1, False)],
)
def test_skip_leaves_out_the_example_region_and_photo(
    region: int, photo: int, excluded: bool
) -> None:
    assert Skip(region=5, photo=8, min_score=None).excludes(region, photo) is excluded
