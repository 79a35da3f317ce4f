"""open_clip checkpoints: our towers and tokenizer against open_clip's own, torch and
OpenVINO, and the torch-free embedder rebuilt from the conversion cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.models.converted import ConvertedEmbedder, load_embedder
from indexer.models.identity import ModelIdentity, model_mismatch, model_record
from indexer.models.openclip import OpenClipEmbedder
from tests.fixtures import REPO_ROOT

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

DATA = REPO_ROOT / "data"
TEXTS = ["a dog", "a red beach ball on the sand", "A Desk With A Laptop.", "shop front"]


def real_photos() -> list[Image.Image]:
    """The checkout's real photos (different sizes and aspect ratios)."""
    paths = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".jpg", ".png", ".webp"))
    return [Image.open(p).convert("RGB") for p in paths]


def reference_vectors(folder: Path, photos, texts) -> tuple[np.ndarray, np.ndarray]:
    """open_clip's own pipeline: its transform, tokenizer and model, normalised."""
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        images = model.eval().encode_image(torch.stack([preprocess(p) for p in photos]))
        text = model.encode_text(tokenizer(texts))
    unit = torch.nn.functional.normalize
    return unit(images, dim=-1).numpy(), unit(text, dim=-1).numpy()


def assert_agree(a: np.ndarray, b: np.ndarray, floor: float = 0.999) -> None:
    """Row by row cosine ≥ ``floor``, and ten times closer than any two inputs' vectors
    are to each other (random weights can map every input near one vector, and then any
    two paths would agree)."""
    cosines = (a * b).sum(axis=1)
    assert cosines.min() >= floor, cosines
    others = (b @ b.T)[~np.eye(len(b), dtype=bool)]
    assert 10 * (1 - cosines.min()) < 1 - others.max(), (cosines.min(), others.max())


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_vectors_match_open_clip(tiny_open_clip_dir: Path, backend: str) -> None:
    photos = real_photos()
    embedder = load_embedder(str(tiny_open_clip_dir), "cpu", precision="fp32", backend=backend)
    assert isinstance(embedder, OpenClipEmbedder) and embedder.backend == backend
    assert embedder.family.name == "open_clip" and embedder.dim == 32
    ref_images, ref_texts = reference_vectors(tiny_open_clip_dir, photos, TEXTS)
    assert_agree(embedder.embed_images(photos), ref_images)
    assert_agree(embedder.embed_texts(TEXTS), ref_texts)
    tokens = embedder.tokenize(TEXTS)["input_ids"]
    expected = open_clip.get_tokenizer(f"local-dir:{tiny_open_clip_dir}")(TEXTS).numpy()
    assert np.array_equal(tokens, expected)


def test_converted_embedder_is_rebuilt_from_the_cache(tiny_open_clip_dir: Path) -> None:
    photos = real_photos()
    full = load_embedder(str(tiny_open_clip_dir), "cpu", precision="fp32", backend="openvino")
    lean = load_embedder(str(tiny_open_clip_dir), "cpu", precision="fp32", backend="openvino")
    assert isinstance(lean, ConvertedEmbedder) and lean.family.name == "open_clip"
    assert_agree(lean.embed_images(photos), full.embed_images(photos), 0.99999)
    assert_agree(lean.embed_texts(TEXTS), full.embed_texts(TEXTS), 0.99999)
    assert np.allclose(lean.embed_text("a dog"), full.embed_text("a dog"), atol=1e-5)
    # One model, whichever way it was loaded: the index records it and accepts it back.
    meta = {k: str(v) for k, v in model_record(full).items()}
    assert meta["model_family"] == "open_clip" and meta["embed_dim"] == "32"
    assert model_mismatch(meta, ModelIdentity.of(lean)) is None


def test_a_clip_index_refuses_an_open_clip_model(tiny_open_clip_dir, tiny_clip_dir) -> None:
    clip = load_embedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="torch")
    ours = load_embedder(str(tiny_open_clip_dir), "cpu", precision="fp32", backend="torch")
    meta = {k: str(v) for k, v in model_record(clip).items()}
    message = model_mismatch(meta, ours)
    assert message is not None and "open_clip" in message


@pytest.mark.slow  # builds the real-shape MobileCLIP2-S0 (random weights) and converts it
def test_real_shape_mobileclip2_s0_matches_open_clip(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    from tests.openclip_factory import make_real_shape_open_clip

    folder = make_real_shape_open_clip("MobileCLIP2-S0", tmp_path / "s0")
    photos = real_photos()
    embedder = load_embedder(str(folder), "cpu", precision="fp32", backend="openvino")
    assert embedder.dim == 512 and embedder.pixels.image_size == (256, 256)
    ref_images, ref_texts = reference_vectors(folder, photos, TEXTS)
    assert_agree(embedder.embed_images(photos), ref_images)
    assert_agree(embedder.embed_texts(TEXTS), ref_texts)
