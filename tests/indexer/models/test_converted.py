"""The embedder from the conversion cache alone: the full embedder's vectors, or None."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.models.clip import ClipEmbedder
from indexer.models.converted import (
    ConvertedEmbedder,
    load_converted_embedder,
    load_embedder,
)
from indexer.models.openvino import image_ir_dir
from indexer.models.source import folder_key
from indexer.settings import openvino_available

pytestmark = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    return [
        Image.fromarray(rng.integers(0, 255, (90 + 30 * i, 140, 3), dtype=np.uint8))
        for i in range(4)
    ]


def _load(clip: Path, **kwargs: object) -> ConvertedEmbedder | None:
    options = {"precision": "fp32", "backend": None, "batch_size": 3, **kwargs}
    return load_converted_embedder(str(clip), "cpu", **options)  # type: ignore[arg-type]


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OBJSEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_same_vectors_as_the_full_embedder(tiny_clip_dir: Path, private_cache: Path) -> None:
    assert _load(tiny_clip_dir) is None  # nothing converted on this machine yet
    full = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="openvino")
    lean = _load(tiny_clip_dir)
    assert isinstance(lean, ConvertedEmbedder)
    assert (lean.model_id, lean.dim, lean.family.name) == (full.model_id, full.dim, "clip")
    assert (lean.precision, lean.backend, lean.batch_size) == ("fp32", "openvino", 3)
    images = _images()
    np.testing.assert_allclose(lean.embed_images(images), full.embed_images(images), atol=1e-6)
    np.testing.assert_allclose(
        lean.embed_text("a red car"), full.embed_text("a red car"), atol=1e-6
    )
    np.testing.assert_allclose(lean.fingerprint(), full.fingerprint(), atol=1e-6)
    assert isinstance(load_embedder(str(tiny_clip_dir), "cpu", precision="fp32"), ConvertedEmbedder)


def test_weights_are_stored_in_fp16(tiny_clip_dir: Path, private_cache: Path) -> None:
    ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="openvino")
    xml = image_ir_dir("clip", folder_key(str(tiny_clip_dir))) / "model.xml"
    assert 'element_type="f16"' in xml.read_text()


def test_full_embedder_where_the_cache_cannot_serve(
    tiny_clip_dir: Path, private_cache: Path
) -> None:
    ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="openvino")
    assert _load(tiny_clip_dir, backend="torch") is None  # PyTorch asked for
    assert (
        load_converted_embedder(
            str(tiny_clip_dir), "cuda", precision=None, backend=None, batch_size=8
        )
        is None
    )
    assert _load(tiny_clip_dir, precision="int8") is None  # never quantized here
    assert _load(tiny_clip_dir, precision="fp64") is None  # the full embedder says why
    torch_model = load_embedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="torch")
    assert isinstance(torch_model, ClipEmbedder) and torch_model.backend == "torch"

    image_dir = image_ir_dir("clip", folder_key(str(tiny_clip_dir)))
    (image_dir / "model.xml").write_text("<not a graph")  # a damaged cache entry
    assert _load(tiny_clip_dir) is None
    shutil.rmtree(image_dir)  # a removed one: the full embedder converts it again
    assert _load(tiny_clip_dir) is None
    assert isinstance(load_embedder(str(tiny_clip_dir), "cpu", precision="fp32"), ClipEmbedder)
    assert isinstance(_load(tiny_clip_dir), ConvertedEmbedder)
