"""Browsing routes: what the index holds, without a query.

Labels with counts (explore by object), one label's objects page by page, the folders and
cameras the filters choose from, photos per month (the timeline) and duplicate groups.
Every route reads through :mod:`indexer.store.browse` or :mod:`retrieval.duplicates` and
answers a pydantic model, so ``/docs`` shows each shape.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from indexer.settings import DEFAULT_DUPLICATE_THRESHOLD
from indexer.store import browse
from retrieval.duplicates import find_duplicates
from retrieval.serve.responses import ERRORS
from retrieval.serve.service import API, THUMB_SIZE, Service, region_dict

MAX_PAGE = 200


class LabelInfo(BaseModel):
    label: str
    objects: int
    region_id: int
    confidence: float | None
    thumb_url: str


class RegionItem(BaseModel):
    region_id: int
    photo_id: int
    image: str
    box: list[float] | None
    label: str | None
    confidence: float | None
    thumb_url: str
    photo_url: str


class RegionPage(BaseModel):
    label: str
    total: int
    offset: int
    regions: list[RegionItem]


class FolderInfo(BaseModel):
    folder: str
    photos: int


class CameraInfo(BaseModel):
    camera: str
    photos: int


class MonthInfo(BaseModel):
    month: str
    photos: int


class Timeline(BaseModel):
    months: list[MonthInfo]
    undated: int


class DuplicateMember(BaseModel):
    photo_id: int
    path: str
    size: int
    width: int
    height: int
    pixels: int
    similarity: float
    keep: bool
    thumb_url: str
    photo_url: str


class DuplicateGroupInfo(BaseModel):
    kind: str
    keep: str
    photos: list[DuplicateMember]


def photo_thumb_url(photo_id: int) -> str:
    return f"{API}/photos/{photo_id}/image?max_side={THUMB_SIZE}"


def browse_router(service: Service) -> APIRouter:
    """The browsing routes over ``service``'s store, to mount under ``/api/v1``."""
    router = APIRouter(prefix=API, tags=["browse"], responses=ERRORS)  # type: ignore[arg-type]
    store = service.store

    @router.get("/labels", summary="Every detector label with its count and best crop")
    def labels() -> list[LabelInfo]:
        return [
            LabelInfo(
                label=c.label,
                objects=c.objects,
                region_id=c.best_region_id,
                confidence=None if c.best_confidence is None else round(c.best_confidence, 4),
                thumb_url=f"{API}/regions/{c.best_region_id}/thumb",
            )
            for c in browse.label_counts(store)
        ]

    @router.get("/regions", summary="A label's objects, most confident first, page by page")
    def regions(
        label: Annotated[str, Query(min_length=1, max_length=200, description="Detector label.")],
        offset: Annotated[int, Query(ge=0, description="Skip this many objects.")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Objects per page.")] = 48,
    ) -> RegionPage:
        total, rows = browse.regions_by_label(store, label, offset, limit)
        items = [RegionItem(**region_dict(r), image=p.path) for r, p in rows]
        return RegionPage(label=label, total=total, offset=offset, regions=items)

    @router.get("/folders", summary="The folders that hold indexed photos, with counts")
    def folders() -> list[FolderInfo]:
        return [FolderInfo(folder=f.name, photos=f.photos) for f in browse.folder_counts(store)]

    @router.get("/cameras", summary="The cameras recorded in the photos, with counts")
    def cameras() -> list[CameraInfo]:
        return [CameraInfo(camera=c.name, photos=c.photos) for c in browse.camera_counts(store)]

    @router.get("/timeline", summary="Photos per month taken, oldest first")
    def timeline() -> Timeline:
        months, undated = browse.month_counts(store)
        return Timeline(
            months=[MonthInfo(month=m.name, photos=m.photos) for m in months], undated=undated
        )

    @router.get("/duplicates", summary="What 'objsearch duplicates' finds, with photo links")
    def duplicates(
        threshold: Annotated[
            float,
            Query(gt=0, le=1, description="Whole-photo cosine from which photos are copies."),
        ] = DEFAULT_DUPLICATE_THRESHOLD,
    ) -> list[DuplicateGroupInfo]:
        groups = [g.to_dict() for g in find_duplicates(store, threshold)]
        for group in groups:
            group["photos"] = [
                DuplicateMember(
                    **p,
                    thumb_url=photo_thumb_url(p["photo_id"]),
                    photo_url=f"{API}/photos/{p['photo_id']}",
                )
                for p in group["photos"]  # type: ignore[attr-defined]
            ]
        return [DuplicateGroupInfo(**g) for g in groups]  # type: ignore[arg-type]

    return router
