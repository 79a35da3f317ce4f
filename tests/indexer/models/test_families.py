"""The family registry: detection from config, and each family's own preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import transformers
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor

from indexer.errors import ModelLoadError
from indexer.models.families import FAMILIES, NaFlex, Squash, family_of, naflex_grid


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _smooth_photo(w: int, h: int) -> Image.Image:
    """A gradient photo: resampling filters differ on noise, not on smooth content."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=-1)
    return Image.fromarray(arr.astype(np.uint8))


def test_registry_is_consistent() -> None:
    names = [f.name for f in FAMILIES]
    types = [t for f in FAMILIES for t in f.model_types]
    assert len(set(names)) == len(names) and len(set(types)) == len(types)
    for family in FAMILIES:
        if family.name != "open_clip":  # open_clip models load through open-clip-torch
            assert hasattr(transformers, family.model_class), family.model_class
        assert {h for h, _ in family.licenses} == {h for h, _ in family.hub_ids}
        assert family.templates and all("{}" in t for t in family.templates)
        assert family.hub_ids and all(dim > 0 for _, dim in family.hub_ids)
        assert family.text.padding in ("longest", "max_length")


@pytest.mark.parametrize(
    ("fixture", "family"),
    [
        ("tiny_clip_dir", "clip"),
        ("tiny_siglip_dir", "siglip"),
        ("tiny_siglip_gemma_dir", "siglip"),
        ("tiny_siglip2_dir", "siglip2"),
        ("tiny_altclip_dir", "altclip"),
    ],
)
def test_family_is_read_from_the_config(request, fixture: str, family: str) -> None:
    folder: Path = request.getfixturevalue(fixture)
    config = AutoConfig.from_pretrained(folder)
    found = family_of(config, str(folder))
    assert found.name == family
    assert found.embed_dim(config) in (24, 32)


def test_unsupported_model_type_is_a_clear_error() -> None:
    config = AutoConfig.for_model("bert")
    with pytest.raises(ModelLoadError) as info:
        family_of(config, "some/bert")
    message = str(info.value)
    assert "'bert'" in message and "SiglipModel" in message and "objsearch models" in message


@pytest.mark.parametrize("size", [(320, 240), (240, 320), (64, 64), (100, 60), (700, 90)])
def test_siglip_pixels_match_its_processor(tiny_siglip_dir: Path, size) -> None:
    """SigLIP squashes the whole photo to its square (no centre crop)."""
    proc = AutoImageProcessor.from_pretrained(tiny_siglip_dir)
    image = _smooth_photo(*size)
    ours = Squash(proc)([image])["pixel_values"]
    reference = proc(images=[image], return_tensors="np")["pixel_values"]
    assert ours.shape == reference.shape == (1, 3, 64, 64)
    assert np.abs(ours - reference).mean() < 0.01 and np.abs(ours - reference).max() < 0.1


@pytest.mark.parametrize(
    "size", [(320, 240), (240, 320), (64, 64), (100, 60), (1000, 180), (13, 700)]
)
def test_naflex_inputs_match_its_processor(tiny_siglip2_dir: Path, size) -> None:
    """Same grid, mask and (to resampling noise) pixels as ``Siglip2ImageProcessor``."""
    proc = AutoImageProcessor.from_pretrained(tiny_siglip2_dir)
    image = _photo(*size)
    ours = NaFlex(proc)([image, _photo(50, 50, seed=1)])
    reference = proc(images=[image, _photo(50, 50, seed=1)], return_tensors="np")
    assert set(ours) == {"pixel_values", "pixel_attention_mask", "spatial_shapes"}
    for name in ours:
        assert ours[name].shape == reference[name].shape, name
    assert np.array_equal(ours["spatial_shapes"], reference["spatial_shapes"])
    assert np.array_equal(ours["pixel_attention_mask"], reference["pixel_attention_mask"])
    assert np.abs(ours["pixel_values"] - reference["pixel_values"]).max() < 0.02


@pytest.mark.parametrize(("h", "w"), [(480, 640), (640, 480), (50, 2000), (16, 16), (7, 9)])
def test_naflex_grid_keeps_aspect_within_budget(h: int, w: int) -> None:
    rows, cols = naflex_grid(h, w, 16, 256)
    assert 1 <= rows * cols <= 256
    assert (rows + 1) * (cols + 1) > 256 or (rows * 16 >= h and cols * 16 >= w)
    if min(h, w) >= 64:
        assert abs(np.log((rows / cols) / (h / w))) < 0.35
