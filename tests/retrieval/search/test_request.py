"""SearchRequest: one record that checks a search once, naming the field that is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from indexer.errors import QueryError
from retrieval.search import SearchFilters, SearchRequest
from retrieval.search.fields import FieldError, rendered
from retrieval.search.request import MAX_OFFSET, MAX_REFINE_TOP, MAX_TOP_K, check_shape


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "a cat", "top_k": 0}, "top_k"),
        ({"text": "a cat", "top_k": MAX_TOP_K + 1}, "top_k"),
        ({"text": "a cat", "offset": -1}, "offset"),
        ({"text": "a cat", "offset": MAX_OFFSET + 1}, "offset"),
        ({"text": "a cat", "refine_top": MAX_REFINE_TOP + 1}, "refine_top"),
        ({"text": "a cat", "not_weight": float("nan")}, "not_weight"),
        ({"text": "a cat", "not_weight": 2.5}, "not_weight"),
        ({"text": "a cat", "negatives": ("a dog", " ")}, "negatives"),
        ({"text": "a cat", "kind": "crop"}, "kind"),
        ({"text": "a cat", "group": "album"}, "group"),
        ({"text": "a cat", "group": "object", "kind": "image"}, "group"),
        ({"like_region": 1, "like_photo": 2}, "like_photo"),
        ({"text": "a cat", "image_weight": 0.3}, "image_weight"),
        ({"text": "a cat", "like_photo": 1, "image_weight": 1.5}, "image_weight"),
        ({"like_photo": 1, "refine": True}, "refine"),
        ({"filters": SearchFilters(ocr="bakery"), "negatives": ("a dog",)}, "negatives"),
        ({"filters": SearchFilters(ocr="bakery"), "kind": "object"}, "kind"),
        ({"text": "a cat", "image": "no/such/photo.jpg"}, "image"),
    ],
)
def test_a_bad_request_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as caught:
        SearchRequest(**fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, QueryError) and isinstance(caught.value, ValueError)


def test_a_good_request_is_normalised_once() -> None:
    request = SearchRequest("a cat", negatives=[" a dog "], group="object", offset=20, top_k=5)  # type: ignore[arg-type]
    assert request.negatives == ("a dog",)
    assert request.kind == "object"  # every matching crop: object regions
    assert request.ranked == 25 and not request.text_lines
    assert request.example_weight == 0.5  # the default when none is given
    assert SearchRequest("a cat", like_photo=3, image_weight=0.2).example_weight == 0.2


def test_words_alone_ask_for_lines_of_text() -> None:
    request = SearchRequest(filters=SearchFilters(ocr="Bakery"), group="object")
    assert request.text_lines and request.kind is None
    assert request.filters.ocr == "bakery"


def test_an_example_path_is_decoded_when_the_request_is_made(tmp_path: Path) -> None:
    path = tmp_path / "query.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(path)
    request = SearchRequest(image=str(path))
    assert isinstance(request.image, Image.Image) and request.image.size == (40, 30)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    with pytest.raises(FieldError, match="cannot use .*notes.jpg as a query image"):
        SearchRequest(image=bad)


def test_each_surface_renders_the_field_by_its_own_name() -> None:
    with pytest.raises(FieldError) as caught:
        SearchRequest("a cat", filters=SearchFilters(after="2024", before="2023"))
    exc = caught.value
    assert str(exc).startswith("after: 2024-01-01 and before 2023-01-01 contradict")
    assert rendered(exc, {"after": "--after", "before": "--before"}).startswith(
        "--after: 2024-01-01 and --before 2023-01-01"
    )
    plain = QueryError("some other problem")
    assert rendered(plain, {"after": "--after"}) == "some other problem"


@pytest.mark.parametrize(
    ("top_k", "kind", "group", "most", "expected"),
    [
        (10, None, "photo", MAX_TOP_K, None),
        (10, "image", "photo", MAX_TOP_K, "image"),
        (10, None, "object", MAX_TOP_K, "object"),
        (MAX_TOP_K + 5, None, "photo", MAX_TOP_K + MAX_OFFSET, None),
    ],
)
def test_check_shape_settles_the_region_kind(
    top_k: int, kind: str | None, group: str, most: int, expected: str | None
) -> None:
    assert check_shape(top_k, kind, group, most) == expected


def test_check_shape_bounds_top_k_by_most() -> None:
    with pytest.raises(FieldError, match="top_k"):
        check_shape(MAX_TOP_K + 5, None, "photo")
