"""``objsearch search``: a cold text search imports no torch and compiles no image tower."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.settings import openvino_available
from tests.fixtures import child_env
from tests.fixtures.cli_probe import run_probed

HEAVY = (
    "torch",
    "torchvision",
    "transformers",
    "ultralytics",
    "fastapi",
    "indexer.models.clip",
    "indexer.models.ocr",
    "rapidocr",
)


def _cold_search(args: list[str], report: Path, **env: str) -> tuple[list[dict], dict]:
    run, found = run_probed(["search", *args], report, **env)
    assert found["code"] == 0, run.stderr
    return json.loads(run.stdout), found


@pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")
def test_cold_text_search_loads_only_the_text_tower(tiny_index: Path, tmp_path: Path) -> None:
    args = ["a cat", "--index", str(tiny_index), "--json", "--top-k", "4", "--device", "cpu"]
    light, report = _cold_search(args, tmp_path / "light.json")
    assert light and [r["rank"] for r in light] == list(range(1, len(light) + 1))
    loaded = set(report["modules"])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert report["compiled"] and all("text-encoder" in x for x in report["compiled"])

    # No conversion cached (another machine, a cleared cache): the full model loads, converts
    # both towers, and the answer is the same.
    full, report = _cold_search(
        args, tmp_path / "full.json", OBJSEARCH_CACHE=str(tmp_path / "empty-cache")
    )
    assert "torch" in report["modules"]
    assert any("image-encoder" in x for x in report["compiled"])
    assert [r["region_id"] for r in full] == [r["region_id"] for r in light]
    assert [r["score"] for r in full] == pytest.approx([r["score"] for r in light], abs=1e-5)


def test_image_queries_load_the_converted_image_tower(
    tiny_index: Path, sample_photos_dir: Path, tmp_path: Path
) -> None:
    """An image query needs the image tower too: from the conversion cache, still no torch."""
    photo = sorted(sample_photos_dir.rglob("*.png"))[0]
    args = ["--image", str(photo), "--index", str(tiny_index), "--json", "--top-k", "2"]
    results, report = _cold_search(args, tmp_path / "image.json")
    assert results and results[0]["image"] == str(photo)
    assert "indexer.models.converted" in report["modules"]
    assert not {"torch", "transformers"} & set(report["modules"])


@pytest.mark.parametrize(
    ("query", "code", "stream", "expected"),
    [
        ("a cat", 0, "stdout", '"rank": 1'),  # complete JSON on a pipe
        ("   ", 2, "stderr", "QUERY: the text query is empty."),
    ],
)
def test_search_exits_quickly_with_its_output_and_exit_code(
    tiny_index: Path, query: str, code: int, stream: str, expected: str
) -> None:
    """The console script ends a search without the interpreter's teardown (see main)."""
    run = subprocess.run(
        [sys.executable, "-m", "retrieval.cli", "search", query, "--index", str(tiny_index),
         "--json", "--top-k", "3", "--device", "cpu"],
        capture_output=True, text=True, env=child_env(),
        timeout=300,
    )  # fmt: skip
    assert run.returncode == code, run.stderr
    assert expected in getattr(run, stream)
    if code == 0:
        assert len(json.loads(run.stdout)) == 3
