"""End to end with tiny random models: index generated photos, search, export (CLI + API)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from indexer import Indexer
from indexer.store import Photo, Region, Store, decode_vector
from retrieval import Searcher
from retrieval.cli import app

RESULT_KEYS = {"score", "image", "box", "kind", "label", "region_id"}


@pytest.fixture(scope="module")
def built_index(tmp_path_factory, tiny_clip_dir, tiny_yolo_path, sample_photos_dir) -> Path:
    index_dir = tmp_path_factory.mktemp("e2e") / "index"
    result = CliRunner().invoke(
        app,
        [
            "index",
            str(sample_photos_dir),
            "--index",
            str(index_dir),
            "--clip-model",
            str(tiny_clip_dir),
            "--detector",
            str(tiny_yolo_path),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    n_photos = sum(1 for p in sample_photos_dir.rglob("*") if p.is_file())
    assert stats["indexed"] == n_photos and stats["failures"] == 0
    assert stats["objects"] > 0
    return index_dir


def run_json(*args: str) -> list[dict]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_results(results: list[dict], index_dir: Path) -> None:
    with Store(index_dir) as store, store.session() as s:
        for r in results:
            assert set(r) >= RESULT_KEYS
            assert r["kind"] in ("object", "image")
            assert os.path.isabs(r["image"]) and os.path.exists(r["image"])
            region = s.get(Region, r["region_id"])
            assert region is not None, "every hit maps to a stored region"
            photo = s.get(Photo, region.photo_id)
            assert photo.path == r["image"] and region.kind == r["kind"]
            if r["kind"] == "object":
                x1, y1, x2, y2 = r["box"]
                assert 0 <= x1 < x2 <= photo.width and 0 <= y1 < y2 <= photo.height
                assert r["label"] == region.label
            else:
                assert r["box"] is None and r["label"] is None
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    images = [r["image"] for r in results]
    assert len(images) == len(set(images)), "results are grouped: one row per photo"


def test_text_search_json(built_index: Path) -> None:
    results = run_json("search", "a red square", "--index", str(built_index), "--top-k", "4")
    assert len(results) == 4
    check_results(results, built_index)
    assert [r["rank"] for r in results] == [1, 2, 3, 4]


def test_objects_only_and_photos_only(built_index: Path) -> None:
    objects = run_json("search", "a cat", "--index", str(built_index), "--objects-only")
    photos = run_json("search", "a cat", "--index", str(built_index), "--photos-only")
    assert objects and all(r["kind"] == "object" for r in objects)
    assert photos and all(r["kind"] == "image" for r in photos)
    check_results(objects, built_index)
    check_results(photos, built_index)


def test_image_query_finds_itself_first(built_index: Path, sample_photos_dir: Path) -> None:
    query = sorted(sample_photos_dir.glob("*.png"))[0]
    results = run_json(
        "search", "--image", str(query), "--index", str(built_index), "--photos-only"
    )
    check_results(results, built_index)
    assert results[0]["image"] == str(query)
    assert results[0]["score"] > 0.99


def test_grouping_shows_each_photos_best_region(built_index: Path) -> None:
    """Each row is its photo's best region: the max cosine over that photo's stored vectors."""
    with Searcher(built_index) as searcher:
        query = searcher.query_vector(text="a photo")
        results = searcher.search(text="a photo", top_k=50)
    with Store(built_index) as store, store.session() as s:
        assert len(results) == store.counts().photos  # every photo appears exactly once
        dim = store.dim()
        for r in results:
            regions = list(s.scalars(select(Region).where(Region.photo_id == r.photo_id)))
            scores = {g.id: float(decode_vector(g.vector, dim) @ query) for g in regions}
            best = max(scores, key=scores.__getitem__)
            assert r.region_id == best
            assert r.score == pytest.approx(scores[best], abs=1e-4)
    assert any(r.matches > 1 for r in results)


def test_table_output_is_readable(built_index: Path) -> None:
    result = CliRunner().invoke(app, ["search", "a dog", "--index", str(built_index), "-k", "3"])
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()  # piped: tab-separated, one row per photo
    assert header.split("\t") == ["#", "score", "photo", "box", "label", "taken"]
    assert len(rows) == 3 and all(len(row.split("\t")) == 6 for row in rows)


def test_export_matches_store(built_index: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--index", str(built_index)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    with Store(built_index) as store, store.session() as s:
        photos = {p.path: p for p in s.scalars(select(Photo))}
        assert {rec["image"] for rec in lines} == set(photos)
        for rec in lines:
            photo = photos[rec["image"]]
            assert (rec["width"], rec["height"]) == (photo.width, photo.height)
            assert rec["caption"] == photo.caption
            stored = {r.id: r for r in s.scalars(select(Region).where(Region.photo_id == photo.id))}
            assert {r["region_id"] for r in rec["regions"]} == set(stored)
            labels = [r["label"] for r in rec["regions"] if r["kind"] == "object"]
            for r in rec["regions"]:
                assert set(r) == {"region_id", "kind", "box", "label", "confidence"}
                if r["kind"] == "image":
                    assert r["box"] is None
            if labels:
                first = photo.caption.split(", ")[0]
                assert first.split(" ", 1)[0].isdigit()
                assert sum(int(part.split(" ", 1)[0]) for part in photo.caption.split(", ")) == len(
                    labels
                )


def test_export_to_file(built_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    result = CliRunner().invoke(app, ["export", "--index", str(built_index), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == Store(built_index).counts().photos


def test_exif_orientation_applied(built_index: Path) -> None:
    with Store(built_index) as store, store.session() as s:
        photo = s.scalar(select(Photo).where(Photo.path.like("%exif%")))
    assert photo is not None
    with Image.open(photo.path) as im:
        stored_w, stored_h = im.size
    assert (photo.width, photo.height) == (stored_h, stored_w)


def test_python_api(built_index: Path, tiny_clip_dir: Path) -> None:
    with Searcher(built_index, clip_model=str(tiny_clip_dir)) as searcher:
        hits = searcher.search(text="a flowerpot", top_k=3)
    assert len(hits) == 3 and hits[0].rank == 1
    assert set(hits[0].to_dict()) >= RESULT_KEYS


def test_search_errors_are_clear(built_index: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["search", "--index", str(built_index)])
    assert r.exit_code != 0 and "give a text query" in r.output
    r = runner.invoke(app, ["search", "x", "--index", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "No objsearch index" in r.output
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    r = runner.invoke(app, ["search", "--image", str(bad), "--index", str(built_index)])
    assert r.exit_code != 0 and "cannot use" in r.output
    assert "Traceback" not in r.output


def test_reindex_reports_unchanged(
    built_index: Path, sample_photos_dir: Path, tiny_clip_dir, tiny_yolo_path
) -> None:
    stats = Indexer(
        built_index, clip_model=str(tiny_clip_dir), detector_weights=str(tiny_yolo_path)
    ).index([sample_photos_dir])
    assert stats.indexed == 0 and stats.unchanged == stats.scanned


def test_torch_backend_gives_the_same_index(
    built_index: Path, sample_photos_dir: Path, tiny_clip_dir, tiny_yolo_path, tmp_path: Path
) -> None:
    """The PyTorch path (no OpenVINO) stores the same regions with matching vectors."""
    other = tmp_path / "torch-index"
    Indexer(
        other,
        clip_model=str(tiny_clip_dir),
        detector_weights=str(tiny_yolo_path),
        backend="torch",
        precision="fp32",
    ).index([sample_photos_dir])

    def regions(index_dir: Path) -> dict[tuple, np.ndarray]:
        with Store(index_dir) as store, store.session() as s:
            rows = s.execute(select(Region, Photo.path).join(Photo)).all()
            return {
                (path, r.kind, r.label, tuple(round(v / 8) for v in r.box)): decode_vector(
                    r.vector, store.dim()
                )
                for r, path in rows
            }

    a, b = regions(built_index), regions(other)
    shared = set(a) & set(b)
    assert len(shared) >= 0.9 * len(a)
    assert min(float(a[k] @ b[k]) for k in shared) > 0.98
