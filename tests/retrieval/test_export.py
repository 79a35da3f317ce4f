"""JSON Lines export: one record per photo with its regions, matching the store."""

from __future__ import annotations

import io
import json
from pathlib import Path

from indexer.store import KIND_IMAGE, Store
from retrieval import export_jsonl, export_records
from tests.fixtures import Models, make_indexer
from tests.fixtures.exif_photos import write_photo


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
        set(json.loads(line))
        == {"image", "width", "height", "caption", "taken_at", "date_source", "camera", "gps"}
        | {"regions"}
        for line in lines
    )


def test_records_carry_photo_metadata(tmp_path: Path, models: Models) -> None:
    folder = tmp_path / "photos"
    write_photo(
        folder / "trip.jpg", taken="2022:05:06 07:08:09", make="FUJIFILM", model="X-T4",
        gps=(-33.8568, 151.2153),
    )  # fmt: skip
    write_photo(folder / "plain.png", seed=1)
    make_indexer(models, tmp_path / "index").index([folder])
    with Store(tmp_path / "index") as store:
        records = {Path(r["image"]).name: r for r in export_records(store)}
    trip, plain = records["trip.jpg"], records["plain.png"]
    assert trip["taken_at"] == "2022-05-06T07:08:09" and trip["date_source"] == "exif-original"
    assert trip["camera"] == "FUJIFILM X-T4"
    assert trip["gps"] == {"lat": -33.8568, "lon": 151.2153}
    assert plain["date_source"] == "file-mtime" and plain["camera"] is None
    assert plain["gps"] is None
