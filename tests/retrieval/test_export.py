"""JSON Lines export: one record per photo with its regions, matching the store."""

from __future__ import annotations

import io
import json
from pathlib import Path

from indexer.store import KIND_IMAGE, Store
from retrieval import export_jsonl, export_records


def test_records_match_the_store(tiny_index: Path) -> None:
    with Store(tiny_index) as store:
        records = list(export_records(store))
        counts = store.counts()
        photos = {p.path: regions for p, regions in store.iter_photos()}
    assert len(records) == counts.photos
    assert [r["image"] for r in records] == sorted(photos)
    for record in records:
        regions = photos[record["image"]]
        assert [r["region_id"] for r in record["regions"]] == [r.id for r in regions]
        for out, region in zip(record["regions"], regions, strict=True):
            if region.kind == KIND_IMAGE:
                assert out["box"] is None and out["confidence"] is None
            else:
                assert out["box"] == [round(v, 2) for v in region.box]
                assert 0.0 < out["confidence"] <= 1.0
    assert sum(len(r["regions"]) for r in records) == counts.regions


def test_jsonl_is_one_line_per_photo(tiny_index: Path) -> None:
    buffer = io.StringIO()
    with Store(tiny_index) as store:
        count = export_jsonl(store, buffer)
        assert count == store.counts().photos
    lines = buffer.getvalue().splitlines()
    assert len(lines) == count
    assert all(
        set(json.loads(line)) == {"image", "width", "height", "caption", "regions"}
        for line in lines
    )
