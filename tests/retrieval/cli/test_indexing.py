"""The ``index`` command: every bad setting is a usage error (exit 2), and a run reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.settings import RaySettings
from retrieval.cli import app
from retrieval.cli.indexing import _ray_settings
from tests.fixtures import Models, cli_index_args, write_photo


def _index(*args: str) -> object:
    return CliRunner().invoke(app, ["index", *args])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--device", "tpu"], "Unknown device 'tpu'"),
        (["--precision", "fp8"], "Unknown precision 'fp8'"),
        (["--backend", "onnx"], "Unknown backend 'onnx'"),
        (["--faiss-index", "lsh"], "Unknown FAISS index type 'lsh'"),
        (["--confidence", "1.5"], "confidence must be in [0, 1]"),
        (["--detector-imgsz", "16"], "detector input size must be 32 to 4096"),
        (["--max-objects", "-1"], "max objects must be >= 0"),
        (["--padding", "2"], "crop padding must be in [0, 1]"),
        (["--max-megapixels", "0"], "megapixel limit must be above 0"),
        (["--ray", "not an address"], "Unknown Ray address"),
        (["--ray", "local", "--ray-actors", "0"], "Ray actors must be >= 1"),
        (["--ray", "local", "--ray-cpus", "-1"], "cpus per actor must be >= 0"),
    ],
)
def test_a_bad_setting_is_a_usage_error(tmp_path: Path, args: list[str], needle: str) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg", seed=1)
    result = _index(str(folder), "--index", str(tmp_path / "index"), *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "index").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("ray", "actors", "cpus", "gpus", "expected"),
    [
        (None, 3, 1.0, 0.0, None),  # no Ray: sizes are ignored, everything runs here
        ("local", None, None, None, RaySettings("local")),
        ("ray://head:10001", 2, 4.0, 1.0, RaySettings("ray://head:10001", 2, 4.0, 1.0)),
    ],
)
def test_ray_settings_come_from_the_address_and_sizes(
    monkeypatch: pytest.MonkeyPatch,
    ray: str | None,
    actors: int | None,
    cpus: float | None,
    gpus: float | None,
    expected: RaySettings | None,
) -> None:
    monkeypatch.delenv("OBJSEARCH_RAY_ADDRESS", raising=False)
    assert _ray_settings(ray, actors, cpus, gpus) == expected


def test_json_report_counts_the_run_and_its_stages(models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        write_photo(folder / f"p{i}.jpg", seed=i)
    missing = tmp_path / "gone"
    args = cli_index_args(models, folder, tmp_path / "index")
    result = CliRunner().invoke(app, [*args, str(missing), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["indexed"] == 3 and report["failures"] == 0
    assert report["stage_seconds"]["embed"] > 0 and report["models_started_at"] > 0
    assert f"{missing}: no such file or folder (skipped)" in result.stderr


def test_table_report_and_a_second_run_that_finds_nothing_new(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "p.jpg", seed=4)
    args = cli_index_args(models, folder, tmp_path / "index")
    first = CliRunner().invoke(app, args)
    again = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0 and "1" in first.stdout, first.output
    assert json.loads(again.stdout)["indexed"] == 0 and json.loads(again.stdout)["unchanged"] == 1
