"""ClipEmbedder: loading, preprocessing parity with CLIPImageProcessor, vectors."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from PIL import Image
from transformers import CLIPImageProcessor

from indexer.errors import ModelLoadError, QueryError
from indexer.models.clip import ClipEmbedder


@pytest.fixture(scope="module")
def embedder(tiny_clip_dir) -> ClipEmbedder:
    return ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", batch_size=4)


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(320, 240), (240, 320), (224, 224), (100, 60), (1000, 180)])
def test_preprocess_matches_clip_image_processor(embedder, tiny_clip_dir, size) -> None:
    """Golden check: our fast preprocessing equals the reference processor's pixels."""
    image = _photo(*size)
    reference = CLIPImageProcessor.from_pretrained(str(tiny_clip_dir))(
        images=[image], return_tensors="np"
    )
    ours = embedder.preprocess([image])["pixel_values"]
    assert ours.shape == reference["pixel_values"].shape
    assert np.abs(ours - reference["pixel_values"]).max() < 0.05


def test_vectors_are_unit_float32_and_batched(embedder) -> None:
    images = [_photo(64 + 10 * i, 80, seed=i) for i in range(10)]  # more than one batch
    vecs = embedder.embed_images(images)
    assert vecs.shape == (10, embedder.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one = embedder.embed_image(images[3])
    assert np.allclose(one, vecs[3], atol=1e-5)
    assert embedder.embed_images([]).shape == (0, embedder.dim)


def test_text_prompt_ensembling_is_mean_of_templates(embedder, monkeypatch) -> None:
    q = embedder.embed_text("a flowerpot")
    parts = embedder.embed_texts([t.format("a flowerpot") for t in embedder.templates])
    mean = parts.mean(axis=0)
    assert np.allclose(q, mean / np.linalg.norm(mean), atol=1e-5)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(q, embedder.embed_text("a butterfly"))
    monkeypatch.setattr(embedder, "embed_texts", None)  # a cache miss would call it and fail
    again = embedder.embed_text("  a   flowerpot ")  # normalised whitespace hits the cache
    assert np.array_equal(again, q)
    with pytest.raises(QueryError, match="empty"):
        embedder.embed_text("   ")


def test_fingerprint_is_stable_across_loads(embedder, tiny_clip_dir) -> None:
    other = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32")
    assert float(embedder.fingerprint() @ other.fingerprint()) > 0.9999


def _no_network(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a local or offline model lookup must not touch the network")


def test_missing_model_error_names_both_ways(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)  # a local path never asks the hub
    with pytest.raises(ModelLoadError) as info:
        ClipEmbedder(str(tmp_path / "no-such-model"), "cpu")
    message = str(info.value)
    assert "no-such-model" in message
    assert "--clip-model" in message and "OBJSEARCH_CLIP_MODEL" in message and "hub id" in message
    assert (
        '"No internet?" in the objsearch README' in message and "objsearch models save" in message
    )


def test_offline_hub_id_fails_fast(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)  # offline: fail without retrying
    with pytest.raises(ModelLoadError, match="openai/clip-vit-base-patch32"):
        ClipEmbedder("openai/clip-vit-base-patch32", "cpu")


FAMILY_DIRS = ["tiny_siglip_dir", "tiny_siglip_gemma_dir", "tiny_siglip2_dir", "tiny_altclip_dir"]


@pytest.mark.parametrize("fixture", FAMILY_DIRS)
def test_every_family_embeds_images_and_text(request, fixture: str) -> None:
    folder = request.getfixturevalue(fixture)
    embedder = ClipEmbedder(str(folder), "cpu", precision="fp32", backend="torch", batch_size=3)
    images = [_photo(64 + 40 * i, 90, seed=i) for i in range(5)]
    vecs = embedder.embed_images(images)
    assert vecs.shape == (5, embedder.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.embed_image(images[4]), vecs[4], atol=1e-5)
    texts = embedder.embed_texts(["a photo of a cat", "a red square"])
    assert texts.shape == (2, embedder.dim)
    assert not np.allclose(texts[0], texts[1])
    query = embedder.embed_text("a cat")
    mean = embedder.embed_texts([t.format("a cat") for t in embedder.templates]).mean(axis=0)
    assert np.allclose(query, mean / np.linalg.norm(mean), atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_siglip_dir", "tiny_siglip2_dir"])
def test_siglip_text_is_padded_to_its_trained_length_without_mask(request, fixture) -> None:
    """SigLIP pools the last position: tokens always fill max_position_embeddings."""
    embedder = ClipEmbedder(str(request.getfixturevalue(fixture)), "cpu", backend="torch")
    tokens = embedder.tokenize(["a cat", "a photo of a red car parked on the street"])
    length = embedder.config.text_config.max_position_embeddings
    assert set(tokens) == {"input_ids"} and tokens["input_ids"].shape == (2, length)
    pad = embedder.tokenizer.pad_token_id
    assert tokens["input_ids"][0, -1] == pad and tokens["input_ids"][0, 0] != pad  # right-padded
    # One text alone and in a batch with a longer one gives the same vector.
    alone = embedder.embed_texts(["a cat"])[0]
    batched = embedder.embed_texts(["a cat", "a photo of a red car parked on the street"])[0]
    assert float(alone @ batched) > 0.99999


def test_multilingual_family_skips_english_templates(tiny_altclip_dir) -> None:
    embedder = ClipEmbedder(str(tiny_altclip_dir), "cpu", backend="torch")
    assert embedder.templates == ("{}",)
    assert set(embedder.tokenize(["一只猫"])) == {"input_ids", "attention_mask"}
    assert np.allclose(
        embedder.embed_text("一只猫"), embedder.embed_texts(["一只猫"])[0], atol=1e-6
    )


def test_not_a_dual_encoder_is_refused(tmp_path) -> None:
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a dual encoder objsearch supports"):
        ClipEmbedder(str(tmp_path), "cpu")
