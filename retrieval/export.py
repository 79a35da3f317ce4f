"""Export of an index for photo-management apps: the photos a filter keeps, and JSON Lines.

XMP sidecars (``objsearch export --xmp``) are written by :mod:`retrieval.xmp` from the
same :func:`exported_photos`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import TextIO

from indexer.store import Photo, Region, Store, TextRegion
from retrieval.search.filters import SearchFilters, matching_region_ids

TEXT_BATCH = 500  # photos whose text lines are read in one query


def selected_photo_ids(store: Store, filters: SearchFilters | None) -> set[int] | None:
    """The ids of the photos ``filters`` keep (a photo passes when any region does); None: all."""
    if filters is None or not filters.restricts_rows:
        return None
    with store.session() as session:
        _, photo_ids = matching_region_ids(session, filters)
    return {int(i) for i in set(photo_ids.tolist())}


def exported_photos(
    store: Store, filters: SearchFilters | None = None
) -> Iterator[tuple[Photo, list[Region], list[TextRegion]]]:
    """Every photo the filters keep, ordered by path, with all of its regions and the lines
    of text read in it (``--ocr``)."""
    keep = selected_photo_ids(store, filters)
    photos = (
        (photo, regions)
        for photo, regions in store.iter_photos(vectors=False)
        if keep is None or photo.id in keep
    )
    while batch := list(islice(photos, TEXT_BATCH)):
        texts = store.texts_of_photos([photo.id for photo, _ in batch])
        for photo, regions in batch:
            yield photo, regions, texts.get(photo.id, [])


def export_records(
    store: Store, filters: SearchFilters | None = None
) -> Iterator[dict[str, object]]:
    """One record per photo: path, size, caption, metadata and its regions (no vectors).

    The lines of text read in it (``--ocr``) follow its regions, with ``kind`` ``"text"``,
    their ``text`` and no ``region_id`` (they are not vector regions).
    """
    for photo, regions, texts in exported_photos(store, filters):
        yield {
            "image": photo.path,
            "width": photo.width,
            "height": photo.height,
            "caption": photo.caption,
            **photo.metadata_dict(),
            "regions": [
                {
                    "region_id": r.id,
                    "kind": r.kind,
                    "box": list(r.shown_box) if r.shown_box is not None else None,
                    "label": r.label,
                    "confidence": r.shown_confidence,
                }
                for r in regions
            ]
            + [
                {
                    "region_id": None,
                    "kind": t.kind,
                    "box": list(t.shown_box),
                    "label": None,
                    "confidence": t.shown_confidence,
                    "text": t.text,
                }
                for t in texts
            ],
        }


def export_jsonl(store: Store, out: TextIO, filters: SearchFilters | None = None) -> int:
    """Write the export to ``out``; returns the number of photos written."""
    count = 0
    for record in export_records(store, filters):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
