"""OpenVINO backend: same vectors and boxes as PyTorch, converted once, clear choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.geometry import box_iou
from indexer.models.clip import ClipEmbedder
from indexer.models.detector import Detector
from indexer.settings import DetectOptions, cache_dir, openvino_available

pytestmark = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [
        Image.fromarray(rng.integers(0, 255, (120 + 20 * i, 160, 3), dtype=np.uint8))
        for i in range(n)
    ]


def test_clip_vectors_match_pytorch(tiny_clip_dir: Path) -> None:
    torch_e = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="torch")
    ov_e = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="openvino")
    bf16_e = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="bf16", backend="openvino")
    assert (torch_e.backend, ov_e.backend) == ("torch", "openvino")
    images = _images(5)
    ref = torch_e.embed_images(images)
    for other, floor in ((ov_e, 0.9999), (bf16_e, 0.99)):
        got = other.embed_images(images)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * ref).sum(axis=1).min() > floor
    assert list((cache_dir() / "openvino").glob("clip-image-encoder-*/model.xml"))
    assert list((cache_dir() / "openvino").glob("clip-text-encoder-*/model.xml"))
    texts = ["a photo of a cat", "a red square", "x"]
    assert (ov_e.embed_texts(texts) * torch_e.embed_texts(texts)).sum(axis=1).min() > 0.9999


def test_detector_boxes_match_pytorch(tiny_yolo_path: Path) -> None:
    images = [Image.new("RGB", (320, 240), (90, 20, 20))]
    torch_d = Detector(str(tiny_yolo_path), "cpu", backend="torch")
    ov_d = Detector(str(tiny_yolo_path), "cpu", backend="openvino")
    assert (torch_d.backend, ov_d.backend) == ("torch", "openvino")
    assert ov_d.names == torch_d.names
    a = torch_d.detect(images, DetectOptions())[0]
    b = ov_d.detect(images, DetectOptions())[0]
    assert len(a) and len(b)
    for box in a.xyxy[:5]:
        assert box_iou(box, b.xyxy).max() > 0.9


@pytest.mark.slow  # converts eight towers
@pytest.mark.parametrize(
    "fixture", ["tiny_siglip_dir", "tiny_siglip_gemma_dir", "tiny_siglip2_dir", "tiny_altclip_dir"]
)
def test_every_family_matches_pytorch_on_openvino(request, fixture: str) -> None:
    """fp32 and bf16 OpenVINO towers against PyTorch; conversions land in the same cache."""
    folder = request.getfixturevalue(fixture)
    torch_e = ClipEmbedder(str(folder), "cpu", precision="fp32", backend="torch")
    ov_e = ClipEmbedder(str(folder), "cpu", precision="fp32", backend="openvino")
    bf16_e = ClipEmbedder(str(folder), "cpu", precision="bf16", backend="openvino")
    assert ov_e.backend == bf16_e.backend == "openvino"
    images = _images(4) + [Image.new("RGB", (300, 40), (200, 30, 30))]
    ref = torch_e.embed_images(images)
    for other, floor in ((ov_e, 0.9999), (bf16_e, 0.99)):
        got = other.embed_images(images)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert (got * ref).sum(axis=1).min() > floor
    texts = ["a photo of a cat", "x", "a blue square on a red background"]
    assert (ov_e.embed_texts(texts) * torch_e.embed_texts(texts)).sum(axis=1).min() > 0.9999
    family = torch_e.family.name
    assert list((cache_dir() / "openvino").glob(f"{family}-image-encoder-*/model.xml"))
    assert list((cache_dir() / "openvino").glob(f"{family}-text-encoder-*/model.xml"))


def test_bf16_pytorch_path_for_siglip2(tiny_siglip2_dir: Path) -> None:
    fp32 = ClipEmbedder(str(tiny_siglip2_dir), "cpu", precision="fp32", backend="torch")
    bf16 = ClipEmbedder(str(tiny_siglip2_dir), "cpu", precision="bf16", backend="torch")
    images = _images(3)
    assert (fp32.embed_images(images) * bf16.embed_images(images)).sum(axis=1).min() > 0.99
