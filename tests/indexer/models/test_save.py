"""Offline copies of dual encoders and detectors (:mod:`indexer.models.save`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.errors import ModelLoadError
from indexer.models.clip import ClipEmbedder
from indexer.models.save import save_model


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


def test_a_classifier_is_not_saved_as_a_detector(tmp_path: Path) -> None:
    from ultralytics import YOLO

    YOLO("yolo11n-cls.yaml").save(tmp_path / "cls.pt")
    with pytest.raises(ModelLoadError, match="'classify' model"):
        save_model(str(tmp_path / "cls.pt"), tmp_path / "out")
    assert not (tmp_path / "out" / "cls.pt").exists()


def test_open_clip_folder_is_saved_as_config_and_weights(tiny_open_clip_dir, tmp_path) -> None:
    from indexer.models.openclip_files import is_open_clip

    dest = tmp_path / "saved"
    saved = save_model(str(tiny_open_clip_dir), dest)
    assert saved.family == "open_clip" and saved.embed_dim == 32 and is_open_clip(str(dest))
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["open_clip_config.json", "open_clip_model.safetensors"]
    original = tiny_open_clip_dir / "open_clip_model.safetensors"
    assert (dest / names[1]).read_bytes() == original.read_bytes()


def test_open_clip_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hub cannot be reached") as info:
        save_model("hf-hub:timm/MobileCLIP2-S0-OpenCLIP", tmp_path / "out")
    assert "hf-hub:timm/MobileCLIP2-S0-OpenCLIP" in str(info.value)
    assert not (tmp_path / "out").exists()
