"""Search options as HTTP query parameters: the same filters and query shaping as the CLI.

Each dependency turns query-string parameters into the records :class:`Searcher` takes, so
``GET /api/v1/search?q=a+cat&after=2023&label=cat&in=~/Trips`` filters exactly as
``objsearch search "a cat" --after 2023 --label cat --in ~/Trips`` does. A value the records
refuse (an unreadable date, an empty label) raises a :class:`FieldError`, answered with 400
and named as here (:data:`HTTP_NAMES`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from fastapi import Query

from retrieval.search import SearchFilters
from retrieval.search.compose import DEFAULT_NOT_WEIGHT, MAX_NOT_WEIGHT
from retrieval.search.request import MAX_OFFSET

# What a search request's fields are called here, where they differ (errors name these).
HTTP_NAMES = {
    "text": "q",
    "top_k": "k",
    "negatives": "not",
    "folders": "in",
    "labels": "label",
    "like_region": "region_id",
    "like_photo": "photo_id",
}


def search_filters(
    after: Annotated[
        str | None, Query(description="Taken on or after: YYYY, YYYY-MM or YYYY-MM-DD.")
    ] = None,
    before: Annotated[
        str | None, Query(description="Taken before: YYYY, YYYY-MM or YYYY-MM-DD.")
    ] = None,
    folders: Annotated[
        list[str] | None, Query(alias="in", description="Folder prefix (repeatable).")
    ] = None,
    labels: Annotated[
        list[str] | None,
        Query(alias="label", description="Detector label of the matched object (repeatable)."),
    ] = None,
    camera: Annotated[str | None, Query(description="Part of the camera name.")] = None,
    near: Annotated[str | None, Query(description="LAT,LON,KM, e.g. 48.8584,2.2945,5.")] = None,
    min_score: Annotated[float | None, Query(description="Drop results scoring below.")] = None,
    match: Annotated[
        str | None,
        Query(description="Words in the caption, labels or file name, or in the text read."),
    ] = None,
    ocr: Annotated[
        str | None,
        Query(
            description="Words read in the photos (any case, accents folded, inside words). "
            "Without q: the lines of text that contain them; with q: a filter on photos.",
            max_length=1000,
        ),
    ] = None,
) -> SearchFilters:
    return SearchFilters(after, before, folders, labels, camera, near, min_score, match, ocr)


@dataclass(frozen=True)
class Shaping:
    """How a query is shaped, its results grouped and paged, beside the query itself.

    ``offset`` skips that many results of the ranking, so a page can "load more" with the
    same parameters and ``offset`` moved on by ``k``.
    """

    negatives: tuple[str, ...] = ()
    not_weight: float = DEFAULT_NOT_WEIGHT
    group: Literal["photo", "object"] = "photo"
    offset: int = 0

    def fields(self) -> dict[str, Any]:
        """The :class:`~retrieval.search.request.SearchRequest` fields this shaping sets."""
        return asdict(self)


def shaping(
    negatives: Annotated[
        list[str] | None,
        Query(alias="not", description="Negative prompt to move away from (repeatable)."),
    ] = None,
    not_weight: Annotated[
        float, Query(ge=0, le=MAX_NOT_WEIGHT, description="Weight of each negative prompt.")
    ] = DEFAULT_NOT_WEIGHT,
    group: Annotated[
        Literal["photo", "object"],
        Query(description="photo: one result per photo; object: every matching crop."),
    ] = "photo",
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Skip this many results (load more).")
    ] = 0,
) -> Shaping:
    return Shaping(tuple(negatives or ()), not_weight, group, offset)
