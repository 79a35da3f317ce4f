"""Browsing summaries of a real index: labels, a label's regions, folders, cameras, months."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from indexer.store import KIND_OBJECT, Store, browse


@pytest.fixture(scope="module")
def store(tiny_index: Path):
    with Store(tiny_index) as opened:
        yield opened


def everything(store: Store) -> list:
    return list(store.iter_photos(vectors=False))


def test_label_counts_match_the_regions(store: Store) -> None:
    objects = [r for _, regions in everything(store) for r in regions if r.kind == KIND_OBJECT]
    counts = browse.label_counts(store)
    assert {c.label: c.objects for c in counts} == Counter(r.label for r in objects)
    assert [c.objects for c in counts] == sorted((c.objects for c in counts), reverse=True)
    by_id = {r.id: r for r in objects}
    for c in counts:
        best = by_id[c.best_region_id]
        assert best.label == c.label
        assert best.confidence == max(r.confidence for r in objects if r.label == c.label)


def test_regions_by_label_pages_without_overlap(store: Store) -> None:
    label = browse.label_counts(store)[0]
    total, first = browse.regions_by_label(store, label.label, 0, 3)
    assert total == label.objects and len(first) == min(3, total)
    pages = [browse.regions_by_label(store, label.label, at, 3)[1] for at in range(0, total, 3)]
    seen = [region for page in pages for region, _ in page]
    assert len({r.id for r in seen}) == total
    assert [r.confidence for r in seen] == sorted((r.confidence for r in seen), reverse=True)
    assert all(photo.id == region.photo_id for page in pages for region, photo in page)
    assert browse.regions_by_label(store, "no such label", 0, 3) == (0, [])


def test_folders_cameras_and_months(store: Store) -> None:
    photos = [photo for photo, _ in everything(store)]
    folders = browse.folder_counts(store)
    assert {f.name: f.photos for f in folders} == Counter(os.path.dirname(p.path) for p in photos)
    assert len(folders) >= 2  # the sample photos have a nested folder
    cameras = browse.camera_counts(store)
    assert {c.name: c.photos for c in cameras} == Counter(p.camera for p in photos if p.camera)
    months, undated = browse.month_counts(store)
    dated = Counter(p.taken_at[:7] for p in photos if p.taken_at)
    assert [(m.name, m.photos) for m in months] == sorted(dated.items())
    assert undated == sum(1 for p in photos if not p.taken_at)
    assert sum(m.photos for m in months) + undated == len(photos)
