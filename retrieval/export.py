"""JSON Lines export of an index for photo-management apps: one line per photo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import TextIO

from indexer.store import Photo, Region, Store, TextRegion

TEXT_BATCH = 500  # photos whose text lines are read in one query


def _with_texts(store: Store) -> Iterator[tuple[Photo, list[Region], list[TextRegion]]]:
    photos = store.iter_photos()
    while batch := list(islice(photos, TEXT_BATCH)):
        texts = store.texts_of_photos([photo.id for photo, _ in batch])
        for photo, regions in batch:
            yield photo, regions, texts.get(photo.id, [])


def export_records(store: Store) -> Iterator[dict[str, object]]:
    """One record per photo: path, size, caption, metadata and its regions (no vectors).

    The lines of text read in it (``--ocr``) follow its regions, with ``kind`` ``"text"``,
    their ``text`` and no ``region_id`` (they are not vector regions).
    """
    for photo, regions, texts in _with_texts(store):
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


def export_jsonl(store: Store, out: TextIO) -> int:
    """Write the export to ``out``; returns the number of photos written."""
    count = 0
    for record in export_records(store):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
