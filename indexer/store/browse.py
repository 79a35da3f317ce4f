"""Read-only summaries of an index for browsing: labels, folders, cameras, months.

The web page lists what the index holds without a query (explore by object, the filter
choices, the timeline). Each summary is one aggregate SQL query over the store's own
session, so it stays cheap on large indexes and never loads vectors.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import defer

from .database import Store
from .schema import KIND_OBJECT, Photo, Region

MONTH_CHARS = 7  # "YYYY-MM" of an ISO ``taken_at``


@dataclass(frozen=True)
class LabelCount:
    """A detector label, how many objects carry it, and its most confident object."""

    label: str
    objects: int
    best_region_id: int
    best_confidence: float | None


@dataclass(frozen=True)
class NamedCount:
    """A folder, camera or month and how many photos it holds."""

    name: str
    photos: int


def label_counts(store: Store) -> list[LabelCount]:
    """Every detector label, most frequent first, each with its best-confidence region."""
    best = (
        select(
            Region.label,
            Region.id,
            Region.confidence,
            func.row_number()
            .over(partition_by=Region.label, order_by=(Region.confidence.desc(), Region.id))
            .label("rank"),
            func.count().over(partition_by=Region.label).label("objects"),
        )
        .where(Region.kind == KIND_OBJECT, Region.label.is_not(None))
        .subquery()
    )
    query = (
        select(best.c.label, best.c.objects, best.c.id, best.c.confidence)
        .where(best.c.rank == 1)
        .order_by(best.c.objects.desc(), best.c.label)
    )
    with store.session() as s:
        return [LabelCount(label, n, rid, conf) for label, n, rid, conf in s.execute(query)]


def regions_by_label(
    store: Store, label: str, offset: int, limit: int
) -> tuple[int, list[tuple[Region, Photo]]]:
    """One page of a label's objects, most confident first, and how many there are."""
    where = (Region.kind == KIND_OBJECT, Region.label == label)
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(Region).where(*where)) or 0
        query = (
            select(Region, Photo)
            .join(Photo)
            .where(*where)
            .order_by(Region.confidence.desc(), Region.id)
            .offset(offset)
            .limit(limit)
            .options(defer(Region.vector))
        )
        return total, [(region, photo) for region, photo in s.execute(query)]


def folder_counts(store: Store) -> list[NamedCount]:
    """Each folder that directly holds indexed photos, by path, with its photo count."""
    counts: Counter[str] = Counter()
    with store.session() as s:
        for (path,) in s.execute(select(Photo.path)):
            counts[os.path.dirname(path)] += 1
    return [NamedCount(folder, n) for folder, n in sorted(counts.items())]


def camera_counts(store: Store) -> list[NamedCount]:
    """Each camera name recorded in the photos' metadata, most photos first."""
    n = func.count().label("n")
    query = (
        select(Photo.camera, n)
        .where(Photo.camera.is_not(None))
        .group_by(Photo.camera)
        .order_by(n.desc(), Photo.camera)
    )
    with store.session() as s:
        return [NamedCount(str(camera), count) for camera, count in s.execute(query)]


def month_counts(store: Store) -> tuple[list[NamedCount], int]:
    """Photos per month taken (``YYYY-MM``, oldest first), and how many have no date."""
    month = func.substr(Photo.taken_at, 1, MONTH_CHARS).label("month")
    query = (
        select(month, func.count())
        .where(Photo.taken_at.is_not(None))
        .group_by(month)
        .order_by(month)
    )
    with store.session() as s:
        months = [NamedCount(m, count) for m, count in s.execute(query)]
        undated = s.scalar(select(func.count()).where(Photo.taken_at.is_(None))) or 0
    return months, undated
