"""JSON Lines export of an index for photo-management apps: one line per photo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from indexer.store import Store


def export_records(store: Store) -> Iterator[dict[str, object]]:
    """One record per photo: path, size, caption, metadata and its regions (no vectors)."""
    for photo, regions in store.iter_photos():
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
            ],
        }


def export_jsonl(store: Store, out: TextIO) -> int:
    """Write the export to ``out``; returns the number of photos written."""
    count = 0
    for record in export_records(store):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
