"""DeviceRegionEmbedder: the tensor path used on CUDA, run here on the CPU device.

The same code runs on any torch device, so these tests check on the CPU what CUDA runs:
the same boxes, labels and records as the PIL path, and vectors that differ only by the
resampling filter.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.geometry import Detections
from indexer.indexing.device_regions import (
    DeviceRegionEmbedder,
    clip_boxes,
    letterbox,
    supports_device_regions,
    unletterbox,
)
from indexer.indexing.regions import RegionEmbedder
from indexer.media.decode import read_photo
from indexer.models import ClipEmbedder
from tests.fixtures import FAST, Models, write_photo


@pytest.mark.parametrize(
    ("height", "width", "side", "gain", "offset"),
    [
        (120, 160, 320, 2.0, (0, 40)),  # landscape: padded above and below
        (160, 120, 320, 2.0, (40, 0)),  # portrait: padded left and right
        (640, 640, 640, 1.0, (0, 0)),  # already square: untouched
        (1000, 500, 640, 0.64, (160, 0)),  # shrunk
    ],
)
def test_letterbox_fits_and_centres(
    height: int, width: int, side: int, gain: float, offset: tuple[int, int]
) -> None:
    image = torch.full((3, height, width), 255, dtype=torch.uint8)
    batch, gains, offsets = letterbox([image], side)
    assert batch.shape == (1, 3, side, side)
    assert gains[0] == pytest.approx(gain)
    assert tuple(offsets[0]) == offset
    left, top = offset
    inside = batch[0, :, top : side - top, left : side - left]
    assert torch.allclose(inside, torch.ones_like(inside))  # the photo, white
    if top:
        assert torch.allclose(batch[0, :, :top], torch.full_like(batch[0, :, :top], 114 / 255))


def test_unletterbox_inverts_letterbox_and_clamps() -> None:
    det = Detections(
        np.array([[40, 60, 120, 100], [-5, 30, 400, 330]], np.float32),
        np.array([0.9, 0.8], np.float32),
        ("cat", "dog"),
    )
    back = unletterbox(det, 2.0, np.array([0.0, 40.0]), (160, 120))
    assert np.allclose(back.xyxy[0], [20, 10, 60, 30])
    assert np.allclose(back.xyxy[1], [0, 0, 160, 120])  # clamped to the photo
    assert back.labels == ("cat", "dog")


@pytest.mark.parametrize(
    ("box", "square", "expected"),
    [
        ((0, 0, 200, 100), True, (50, 0, 150, 100)),  # wide: centred square
        ((10, 0, 60, 200), True, (10, 75, 60, 125)),  # tall: centred square
        ((0, 0, 200, 100), False, (0, 0, 200, 100)),  # squash: the whole box
    ],
)
def test_clip_boxes(box: tuple[int, ...], square: bool, expected: tuple[int, ...]) -> None:
    assert tuple(clip_boxes([box], square)[0]) == expected


def _photos(tmp_path: Path) -> list:
    sizes = [(160, 120), (90, 200), (300, 300)]
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"p{i}.jpg"
        write_photo(path, size=size, seed=i)
        paths.append(path)
    return [read_photo(str(p), decode_side=None) for p in paths]


def test_same_records_as_the_pil_path(models: Models, tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    timings: dict[str, float] = defaultdict(float)
    pil = RegionEmbedder(models.embedder, models.detector, FAST).embed(photos)  # type: ignore[arg-type]
    step = DeviceRegionEmbedder(models.embedder, models.detector, FAST, timings)  # type: ignore[arg-type]

    device = step.embed(photos)

    assert [r.path for r in device] == [r.path for r in pil]
    for a, b in zip(pil, device, strict=True):
        assert [r.kind for r in a.regions] == [r.kind for r in b.regions]
        assert [r.label for r in a.regions] == [r.label for r in b.regions]
        assert a.caption == b.caption
        assert np.allclose([r.box for r in a.regions], [r.box for r in b.regions], atol=1.0)
        cosines = [
            float(np.dot(x.vector, y.vector)) for x, y in zip(a.regions, b.regions, strict=True)
        ]
        assert min(cosines) > 0.97, cosines  # only the resampling filter differs
    assert set(timings) >= {"detect", "crop", "embed"}


def test_photos_only(models: Models, tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    records = DeviceRegionEmbedder(models.embedder, None, FAST).embed(photos)  # type: ignore[arg-type]
    assert [len(r.regions) for r in records] == [1, 1, 1]
    vectors = np.stack([r.regions[0].vector for r in records])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_only_for_torch_models_with_box_preprocessing(
    models: Models, tiny_siglip2_dir: Path
) -> None:
    assert supports_device_regions(models.embedder, models.detector)  # type: ignore[arg-type]
    naflex = ClipEmbedder(str(tiny_siglip2_dir), "cpu", backend="torch")
    assert not supports_device_regions(naflex, None)  # per-photo patch grids: PIL path
    with pytest.raises(ValueError, match="PyTorch"):
        DeviceRegionEmbedder(naflex, None, FAST)
