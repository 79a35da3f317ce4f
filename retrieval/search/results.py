"""Search results: the :class:`SearchResult` record and how ranked rows become results.

Kept apart from the searcher so the HTTP layer, the CLI and exporters can name a result
without the ranking machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from indexer.store import Photo, Region, TextRegion

RegionKind = Literal["object", "image"]
Group = Literal["photo", "object"]
GROUPS = ("photo", "object")


@dataclass
class SearchResult:
    """One photo in the ranking, represented by its best-matching region."""

    rank: int
    score: float
    image: str
    kind: str
    box: tuple[float, float, float, float] | None
    label: str | None
    confidence: float | None
    region_id: int | None  # None for a line of text (text lines are not vector regions)
    photo_id: int
    width: int
    height: int
    caption: str
    matches: int = 1
    refined_box: tuple[float, float, float, float] | None = None
    refinement: str = "not requested"  # see retrieval.localize.refine.REFINEMENTS
    taken_at: str | None = None
    date_source: str | None = None
    camera: str | None = None
    gps: dict[str, float] | None = None
    text: str | None = None  # the words read, for kind "text"

    def to_dict(self) -> dict[str, object]:
        """The JSON form: documented keys first, extra detail after."""
        data = asdict(self)
        data["box"] = list(self.box) if self.box is not None else None
        data["refined_box"] = list(self.refined_box) if self.refined_box is not None else None
        return data


def result_for(region: Region | TextRegion, photo: Photo, score: float) -> SearchResult:
    """The result showing ``region`` of ``photo`` (rank and matches are set by :func:`ranked`)."""
    if isinstance(region, TextRegion):  # a line of text: no label, no vector region id
        label, region_id, text = None, None, region.text
    else:
        label, region_id, text = region.label, region.id, None
    return SearchResult(
        rank=0,
        score=round(float(score), 6),
        image=photo.path,
        kind=region.kind,
        box=region.shown_box,
        label=label,
        confidence=region.shown_confidence,
        region_id=region_id,
        text=text,
        photo_id=photo.id,
        width=photo.width,
        height=photo.height,
        caption=photo.caption,
        taken_at=photo.taken_at,
        date_source=photo.date_source,
        camera=photo.camera,
        gps=photo.gps,
    )


def ranked(entries: Sequence[tuple[Region | TextRegion, Photo, float, int]]) -> list[SearchResult]:
    """Results numbered from 1 in the order given, each with its count of matching regions."""
    results = []
    for rank, (region, photo, score, matches) in enumerate(entries, 1):
        result = result_for(region, photo, score)
        result.rank, result.matches = rank, matches
        results.append(result)
    return results
