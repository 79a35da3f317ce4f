"""open_clip folders and hub ids: detection, preprocessing settings, refusals, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from indexer.errors import ModelLoadError
from indexer.models.families import CentreCrop, Squash, open_clip_pixels
from indexer.models.openclip_files import (
    OPENAI_MEAN,
    OpenClipError,
    image_settings,
    is_open_clip,
)
from indexer.models.source import model_folder

MODEL_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 48},
    "text_cfg": {"context_length": 77},
}


def write_config(folder: Path, model_cfg: dict, preprocess_cfg: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (folder / "open_clip_config.json").write_text(json.dumps(data))
    return folder


def test_detection_needs_the_config_and_no_transformers_config(tmp_path: Path) -> None:
    folder = write_config(tmp_path / "m", MODEL_CFG)
    assert is_open_clip(str(folder)) and is_open_clip("hf-hub:timm/MobileCLIP2-S0-OpenCLIP")
    (folder / "config.json").write_text("{}")  # both layouts: transformers loads it
    assert not is_open_clip(str(folder))
    assert not is_open_clip("openai/clip-vit-base-patch32")


def test_settings_default_to_openai_clip_and_read_mobileclip(tmp_path: Path) -> None:
    plain = image_settings(str(write_config(tmp_path / "plain", MODEL_CFG)))
    assert plain.crop_size == {"height": 48, "width": 48} and plain.image_mean == list(OPENAI_MEAN)
    assert plain.resample == int(Image.Resampling.BICUBIC)
    assert isinstance(open_clip_pixels(plain), CentreCrop)
    mobile = {"mean": [0, 0, 0], "std": [1, 1, 1], "interpolation": "bilinear", "size": 256}
    settings = image_settings(str(write_config(tmp_path / "mobile", MODEL_CFG, mobile)))
    assert settings.size["shortest_edge"] == 256 and settings.image_std == [1, 1, 1]
    assert settings.resample == int(Image.Resampling.BILINEAR)
    squash = image_settings(
        str(write_config(tmp_path / "sq", MODEL_CFG, {"resize_mode": "squash"}))
    )
    assert isinstance(open_clip_pixels(squash), Squash)


@pytest.mark.parametrize(
    ("text_cfg", "preprocess", "reason"),
    [
        ({"hf_tokenizer_name": "timm/ViT-B-16-SigLIP"}, {}, "hf_tokenizer_name"),
        ({"hf_model_name": "xlm-roberta-base"}, {}, "hf_model_name"),
        ({"tokenizer_kwargs": {"clean": "canonicalize"}}, {}, "canonicalize"),
        ({}, {"resize_mode": "longest"}, "longest"),
    ],
)
def test_what_cannot_run_torch_free_is_refused(tmp_path, text_cfg, preprocess, reason) -> None:
    folder = write_config(tmp_path / "m", {**MODEL_CFG, "text_cfg": text_cfg}, preprocess)
    with pytest.raises(OpenClipError, match=reason):
        image_settings(str(folder))  # reads (and checks) the config first


def test_hub_id_not_cached_and_offline_names_both_ways(tmp_path, monkeypatch) -> None:
    from indexer.models.converted import load_embedder

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_folder("hf-hub:timm/MobileCLIP2-S0-OpenCLIP") is None
    with pytest.raises(ModelLoadError) as info:
        load_embedder("hf-hub:timm/MobileCLIP2-S0-OpenCLIP", "cpu")
    message = str(info.value)
    assert "hf-hub:timm/MobileCLIP2-S0-OpenCLIP" in message and "--clip-model PATH" in message
    assert "open_clip_config.json" in message


def test_hub_id_found_in_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--timm--MobileCLIP2-S0-OpenCLIP"
    write_config(repo / "snapshots" / "abc123", MODEL_CFG)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert model_folder("hf-hub:timm/MobileCLIP2-S0-OpenCLIP") == str(repo / "snapshots" / "abc123")


def test_folder_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("open_clip")
    from indexer.models.converted import load_embedder

    folder = write_config(tmp_path / "m", MODEL_CFG)
    with pytest.raises(ModelLoadError, match="open_clip_model.safetensors"):
        load_embedder(str(folder), "cpu", backend="torch")
