"""``objsearch models save``: offline copies of dual encoders and detectors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.embed import ClipEmbedder
from indexer.errors import ModelLoadError
from indexer.model_save import save_model
from retrieval.cli import app


def _text(output: str) -> str:
    """CLI output with terminal line wrapping undone."""
    return " ".join(output.split())


def test_saved_dual_encoder_loads_offline_with_the_same_weights(
    tiny_siglip_dir: Path, tmp_path: Path
) -> None:
    """A local folder stands in for the hub id: the same from_pretrained/save_pretrained path."""
    dest = tmp_path / "models" / "siglip"
    saved = save_model(str(tiny_siglip_dir), dest)
    assert saved.path == dest and saved.family == "siglip" and saved.embed_dim == 32
    assert {"config.json", "model.safetensors", "spiece.model"} <= set(os.listdir(dest))
    original = ClipEmbedder(str(tiny_siglip_dir), "cpu", backend="torch")
    copy = ClipEmbedder(str(dest), "cpu", backend="torch")
    assert copy.family.name == "siglip"
    assert float(original.fingerprint() @ copy.fingerprint()) > 0.99999
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_cli_save_prints_how_to_use_it(tiny_siglip2_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "siglip2"
    result = CliRunner().invoke(app, ["models", "save", str(tiny_siglip2_dir), str(dest)])
    assert result.exit_code == 0, result.output
    assert "siglip2 model, 32-d" in result.output
    assert f"OBJSEARCH_CLIP_MODEL={dest}" in result.output.replace("\n", "")
    assert ClipEmbedder(str(dest), "cpu", backend="torch").family.name == "siglip2"


def test_unreachable_hub_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "clip"
    result = CliRunner().invoke(
        app, ["models", "save", "google/siglip2-base-patch16-224", str(dest)]
    )
    assert result.exit_code != 0
    text = _text(result.output)
    assert "hub cannot be reached" in text and "No internet?" in text
    assert "Traceback" not in result.output
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_existing_folder_is_not_overwritten(tiny_siglip_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ModelLoadError, match="already exists"):
        save_model(str(tiny_siglip_dir), tmp_path)
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_detector_weights_are_copied_and_checked(tiny_yolo_path: Path, tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()  # a folder that already holds other models is fine
    saved = save_model(str(tiny_yolo_path), tmp_path)
    assert saved.kind == "detector" and saved.env_var == "OBJSEARCH_DETECTOR"
    assert saved.path == tmp_path / tiny_yolo_path.name
    assert saved.path.read_bytes() == tiny_yolo_path.read_bytes()
    with pytest.raises(ModelLoadError, match="already exists"):
        save_model(str(tiny_yolo_path), tmp_path)


def test_detector_download_offline_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    import indexer.model_save as model_save

    monkeypatch.setattr(model_save, "_RELEASES_HOST", "no-such-host.invalid")
    result = CliRunner().invoke(app, ["models", "save", "yolo11n.pt", str(tmp_path / "det")])
    assert result.exit_code != 0 and "No internet?" in _text(result.output)
    assert not list(tmp_path.rglob("*.pt"))


def test_a_classifier_is_not_saved_as_a_detector(tmp_path: Path) -> None:
    from ultralytics import YOLO

    YOLO("yolo11n-cls.yaml").save(tmp_path / "cls.pt")
    with pytest.raises(ModelLoadError, match="'classify' model"):
        save_model(str(tmp_path / "cls.pt"), tmp_path / "out")
    assert not (tmp_path / "out" / "cls.pt").exists()


def test_models_lists_families_default_and_measured_speed() -> None:
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["family"] for r in rows] == ["clip", "siglip", "siglip2", "altclip"]
    assert [r["family"] for r in rows if r["default"]] == ["clip"]
    assert all(r["hub_ids"] and all(h["embed_dim"] > 0 for h in r["hub_ids"]) for r in rows)
    clip = rows[0]
    assert clip["photos_per_s"] is None or clip["photos_per_s"] > 0
    assert clip["measured_shape"] is None or "ViT-B/32" in clip["measured_shape"]
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "openai/clip-vit-base-patch32" in table.output and "default" in table.output
    assert all(name in table.output for name in ("SigLIP 2", "AltCLIP", "rtdetr"))
