"""The import rule: once the models are converted, CPU runs import no torch, transformers,
torchvision, ultralytics or OpenVINO's conversion tools, nor for open_clip models open_clip
or timm (each command runs in a fresh process, as a user runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures import write_photo
from tests.fixtures.cli_probe import run_probed

# The research stack, and OpenVINO's model-conversion tools (a tenth of a second of every
# run's start-up; running a converted model never needs them).
HEAVY = (
    "torch",
    "torchvision",
    "transformers",
    "ultralytics",
    "open_clip",
    "timm",
    "openvino.tools.ovc",
)


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[dict, str]:
    """``objsearch ARGS``: its exit code and the heavy packages it imported, and its stdout."""
    run, report = run_probed(list(args), tmp_path / "report.json", **env)
    heavy = sorted(m for m in HEAVY if m in report["modules"])
    return {"code": report["code"], "heavy": heavy}, run.stdout


def check_lean_runs(tmp_path: Path, clip_model: Path, detector: Path) -> None:
    """Index (converting), add photos and index again, then search by text and by image:
    every run after the first imports none of :data:`HEAVY`."""
    folder, index_dir = tmp_path / "photos", tmp_path / "index"
    for i in range(3):
        write_photo(folder / f"p{i}.jpg", (160, 120), seed=i)
    env = {"OBJSEARCH_CACHE": str(tmp_path / "cache")}  # a fresh cache: the first run converts
    base = ["--index", str(index_dir), "--clip-model", str(clip_model), "--detector", str(detector)]
    first, _ = run_cli(tmp_path, env, "index", str(folder), *base)
    assert first["code"] == 0
    assert "torch" in first["heavy"]  # converting needs the full stack, once

    for i in range(3, 5):  # the small update: a few photos added, the index run again
        write_photo(folder / f"p{i}.jpg", (160, 120), seed=i)
    second, out = run_cli(tmp_path, env, "index", str(folder), *base, "--json")
    assert second == {"code": 0, "heavy": []}
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["indexed"] == 2 and stats["unchanged"] == 3 and stats["failures"] == 0

    text, out = run_cli(tmp_path, env, "search", "a cat", "--index", str(index_dir), "--json")
    assert text == {"code": 0, "heavy": []}
    assert json.loads(out)  # results, not an empty answer

    image, out = run_cli(
        tmp_path, env, "search", "--image", str(folder / "p0.jpg"), "--index", str(index_dir)
    )
    assert image == {"code": 0, "heavy": []}
    assert "p0.jpg" in out


@pytest.mark.slow  # converts the tiny models once, then four more CLI processes
def test_converted_models_run_without_torch(models, tmp_path) -> None:
    check_lean_runs(tmp_path, models.clip_dir, models.yolo_path)


@pytest.mark.slow  # the same with an open_clip checkpoint folder
def test_converted_open_clip_model_runs_without_torch(
    tiny_open_clip_dir, tiny_yolo_path, tmp_path
) -> None:
    check_lean_runs(tmp_path, tiny_open_clip_dir, tiny_yolo_path)
