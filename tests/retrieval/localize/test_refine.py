"""--refine and the localize command, end to end with the tiny random CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from indexer import Indexer
from indexer.models.clip import ClipEmbedder
from retrieval.cli import app
from retrieval.localize.refine import CachedEmbedder, localize_prompts


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_clip_dir, tiny_yolo_path, sample_photos_dir) -> Path:
    out = tmp_path_factory.mktemp("refine") / "index"
    Indexer(
        out, clip_model=str(tiny_clip_dir), detector_weights=str(tiny_yolo_path), device="cpu"
    ).index([sample_photos_dir])
    return out


def _inside(box: list[float], w: int, h: int) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_search_refine_adds_refined_boxes(index_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "search",
            "a red square",
            "--index",
            str(index_dir),
            "--refine",
            "--refine-top",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) >= 3
    assert all("refined_box" in r for r in rows)
    assert all(r["refined_box"] is None for r in rows[3:])
    refined = [r for r in rows[:3] if r["refined_box"] is not None]
    assert refined, "random CLIP scores still give a peaked map on at least one photo"
    for r in refined:
        assert _inside(r["refined_box"], r["width"], r["height"])
        if r["box"] is not None:  # object hits are searched inside their crop plus a margin
            x1, y1, x2, y2 = r["box"]
            mx, my = (x2 - x1) * 0.25 + 1, (y2 - y1) * 0.25 + 1
            rx1, ry1, rx2, ry2 = r["refined_box"]
            assert rx1 >= x1 - mx and ry1 >= y1 - my and rx2 <= x2 + mx and ry2 <= y2 + my


def test_refine_table_output(index_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["search", "a cat", "--index", str(index_dir), "--refine", "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "refined box" in result.stdout


def test_localize_command_writes_images_and_json(
    tiny_clip_dir: Path, sample_photos_dir: Path, tmp_path: Path
) -> None:
    photo = sorted(sample_photos_dir.glob("*.jpg"))[0]
    out, heat = tmp_path / "annotated.png", tmp_path / "heat.png"
    args = ["localize", str(photo), "a butterfly", "a cat", "--clip-model", str(tiny_clip_dir)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--heatmap", str(heat), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [p["prompt"] for p in data["prompts"]] == ["a butterfly", "a cat"]
    with Image.open(photo) as im:
        w, h = ImageOps.exif_transpose(im).size  # boxes and drawings are upright
    for p in data["prompts"]:
        assert p["windows_scored"] <= 128
        for b in p["boxes"]:
            assert _inside(b["box"], w, h) and 0 <= b["confidence"] <= 1
    for path in (out, heat):
        with Image.open(path) as im:
            assert im.size == (w, h) and im.mode == "RGB"
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "a butterfly" in table.stdout


def test_localize_errors_are_clear(tiny_clip_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"")
    r = CliRunner().invoke(app, ["localize", str(bad), "a cat", "--clip-model", str(tiny_clip_dir)])
    assert r.exit_code != 0 and "Cannot read" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(
        app,
        ["localize", str(bad), "a cat", "--method", "magic", "--clip-model", str(tiny_clip_dir)],
    )
    assert r.exit_code != 0 and "window or occlusion" in r.output


def test_cached_embedder_embeds_each_crop_once(
    tiny_clip_dir: Path, sample_photos_dir: Path
) -> None:
    embedder = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32")
    calls: list[int] = []
    original = embedder.embed_images

    def counting(images):
        calls.append(len(images))
        return original(images)

    embedder.embed_images = counting  # type: ignore[method-assign]
    photo = sorted(sample_photos_dir.glob("*.png"))[0]
    _, found = localize_prompts(str(photo), ["a cat", "a dog", "a tree"], embedder, max_windows=32)
    assert len(found) == 3
    assert sum(calls) == found[0].result.windows_scored  # crops embedded for the first prompt only
    cached = CachedEmbedder(embedder)
    crops = [Image.new("RGB", (40, 40), (i, 0, 0)) for i in range(3)]
    first = cached.embed_images(crops)
    assert np.allclose(cached.embed_images(crops[::-1]), first[::-1])
