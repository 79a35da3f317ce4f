"""The model catalogue: families joined with the benchmark's stored speeds."""

from __future__ import annotations

import json
from pathlib import Path

from indexer.models.catalog import SPEEDS_FILE, catalog, is_default, model_speeds
from indexer.models.families import FAMILIES


def test_stored_speeds_name_known_families_only() -> None:
    """The shipped table comes from ``index_speed.py --write-speeds`` for registry families."""
    data = json.loads(SPEEDS_FILE.read_text(encoding="utf-8"))
    assert set(data["families"]) <= {f.name for f in FAMILIES}
    assert {"what", "machine", "date", "command", "noise"} <= set(data)
    assert "--families" in data["command"] and "--write-speeds" in data["command"]
    for entry in data["families"].values():
        assert entry["photos_per_s"] is None or entry["photos_per_s"] > 0


def test_catalog_joins_speeds_and_marks_the_unmeasured(tmp_path: Path) -> None:
    speeds = tmp_path / "speeds.json"
    speeds.write_text(
        json.dumps(
            {
                "machine": "test box",
                "families": {"siglip": {"photos_per_s": 0.5, "photos_only_per_s": 2.0}},
            }
        )
    )
    rows, about = catalog(speeds)
    assert [r.family.name for r in rows] == [f.name for f in FAMILIES]
    by_name = {r.family.name: r for r in rows}
    assert by_name["siglip"].speed is not None and by_name["siglip"].speed.objects == 0.5
    assert by_name["siglip"].speed.shape == by_name["siglip"].family.benchmark_shape
    assert by_name["clip"].speed is None and about == {"machine": "test box"}
    assert [r.family.name for r in rows if is_default(r.family)] == ["clip"]


def test_missing_or_broken_speeds_file_means_not_measured(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    for path in (tmp_path / "missing.json", tmp_path / "broken.json"):
        rows, about = catalog(path)
        assert all(r.speed is None for r in rows) and about == {}


def test_side_by_side_models_give_ratios_to_the_default(tmp_path: Path) -> None:
    speeds = tmp_path / "speeds.json"
    run = {
        "clip": {"family": "clip", "shape": "ViT-B/32", "photos_per_s": 2.0},
        "open_clip:MobileCLIP2-S0": {
            "family": "open_clip",
            "shape": "MobileCLIP2-S0",
            "photos_per_s": 5.0,
            "photos_only_per_s": 30.0,
        },
        "retired:x": {"family": "gone", "shape": "?", "photos_per_s": 1.0},
    }
    towers = {
        "clip": {"family": "clip", "shape": "ViT-B/32", "images_per_s": 6.0, "texts_per_s": 60.0},
        "open_clip:MobileCLIP2-S0": {
            "family": "open_clip",
            "shape": "MobileCLIP2-S0",
            "images_per_s": 9.0,
            "texts_per_s": 6.0,
        },
    }
    data = {"families": {}, "models": run, "models_about": {"date": "d"}, "towers": towers}
    speeds.write_text(json.dumps(data))
    side_by_side, about = model_speeds(speeds)
    measured = {m.shape: m for m in side_by_side}
    assert about == {"date": "d"}
    assert set(measured) == {"ViT-B/32", "MobileCLIP2-S0"}  # unknown families are left out
    mobile = measured["MobileCLIP2-S0"]
    assert mobile.objects_ratio == 2.5 and mobile.photos_only_ratio is None
    assert mobile.images_ratio == 1.5 and mobile.texts_ratio == 0.1
    assert mobile.checkpoint.endswith("MobileCLIP2-S0-OpenCLIP") and "Apple" in mobile.license
    assert measured["ViT-B/32"].license == "MIT"
    rows, _ = catalog(speeds)  # the family row takes its benchmark shape's entry
    by_name = {r.family.name: r for r in rows}
    assert by_name["open_clip"].speed is not None and by_name["open_clip"].speed.objects == 5.0
