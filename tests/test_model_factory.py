"""Checks that the on-disk test models load through the real code paths and behave as promised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tests.model_factory import (
    BOS_TOKEN,
    EOS_TOKEN,
    EXIF_PHOTO_NAME,
    make_clip_tokenizer,
    make_clip_tokenizer_files,
    make_sample_photos,
    make_tiny_clip,
    make_tiny_yolo,
)

WORDS = ["cat", "dog", "flowerpot", "butterfly", "car", "person", "remote", "couch", "red"]


def _embedding(out: object) -> torch.Tensor:
    """Projected embedding from ``get_*_features``: a tensor before transformers 5, else pooled."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _content_ids(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    return ids[1:-1]


def test_tokenizer_files_follow_clip_format(tmp_path: Path) -> None:
    vocab_path, merges_path = make_clip_tokenizer_files(tmp_path, vocab_size=1000)
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    merges = merges_path.read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2"
    assert len(vocab) <= 1000
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert vocab[BOS_TOKEN] == len(vocab) - 2 and vocab[EOS_TOKEN] == len(vocab) - 1
    by_id = sorted(vocab, key=vocab.get)
    assert all(len(t) == 1 for t in by_id[:256])  # the byte alphabet
    assert by_id[256:512] == [t + "</w>" for t in by_id[:256]]
    for line in merges[1:]:  # every merge result is a token
        left, right = line.split(" ")
        assert left + right in vocab
    # Deterministic: a second run writes the same files.
    again = make_clip_tokenizer_files(tmp_path / "again", vocab_size=1000)
    assert again[0].read_text(encoding="utf-8") == vocab_path.read_text(encoding="utf-8")
    assert again[1].read_text(encoding="utf-8") == merges_path.read_text(encoding="utf-8")


def test_tokenizer_round_trips_without_unknown_tokens(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, CLIPTokenizer

    make_clip_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "saved")
    for loaded in (
        CLIPTokenizer.from_pretrained(tmp_path / "saved"),
        AutoTokenizer.from_pretrained(tmp_path / "saved"),
    ):
        specials = {loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id}
        seen: dict[tuple[int, ...], str] = {}
        for text in [*WORDS, "a photo of a dog", "a photo of a cat", "an unseen word: xylograph!"]:
            ids = _content_ids(loaded, text)
            assert ids and not specials & set(ids), (text, ids)
            assert tuple(ids) not in seen, (text, seen.get(tuple(ids)))
            seen[tuple(ids)] = text
        assert len(_content_ids(loaded, "cat")) == 1  # common words are single tokens
        assert _content_ids(loaded, "A Photo of a CAT") == _content_ids(loaded, "a photo of a cat")
        assert loaded.model_max_length == 77
        assert loaded.decode(_content_ids(loaded, "a photo of a dog")) == "a photo of a dog"


def test_tiny_clip_loads_and_embeds(tiny_clip_dir: Path) -> None:
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
    )

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    image_processor = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    assert image_processor.crop_size == {"height": 224, "width": 224}
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert model.config.text_config.eos_token_id == tokenizer.eos_token_id

    images = [Image.new("RGB", (320, 240), (200, 30, 30)), Image.new("RGB", (240, 320), "blue")]
    texts = ["a photo of a cat", "a photo of a dog", "flowerpot"]
    inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
    assert inputs["pixel_values"].shape == (2, 3, 224, 224)
    with torch.no_grad():
        image_emb = _embedding(model.get_image_features(pixel_values=inputs["pixel_values"]))
        text_emb = _embedding(
            model.get_text_features(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            )
        )
    assert image_emb.shape == (2, 32) and text_emb.shape == (3, 32)
    assert torch.isfinite(image_emb).all() and torch.isfinite(text_emb).all()
    assert not torch.allclose(text_emb[0], text_emb[1])  # eos pooling sees the differing word


def test_tiny_clip_is_deterministic_and_configurable(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from safetensors.torch import load_file
    from transformers import CLIPModel

    other = make_tiny_clip(tmp_path / "same")
    a = load_file(tiny_clip_dir / "model.safetensors")
    b = load_file(other / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    small = make_tiny_clip(tmp_path / "small", projection_dim=16, image_size=64, patch_size=16)
    model = CLIPModel.from_pretrained(small).eval()
    with torch.no_grad():
        emb = _embedding(model.get_image_features(pixel_values=torch.zeros(1, 3, 64, 64)))
    assert emb.shape == (1, 16)


def test_tiny_yolo_detects_boxes(tiny_yolo_path: Path) -> None:
    from ultralytics import YOLO

    model = YOLO(tiny_yolo_path)
    assert model.task == "detect"
    assert len(model.names) == 80 and model.names[0] == "person" and model.names[15] == "cat"
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    result = model.predict(image, conf=0.25, verbose=False)[0]
    assert len(result.boxes) >= 1
    assert {result.names[int(c)] for c in result.boxes.cls} == {"cat"}
    assert float(result.boxes.conf.min()) > 0.9
    xyxy = result.boxes.xyxy
    assert (xyxy[:, 0] >= 0).all() and (xyxy[:, 2] <= 640).all() and (xyxy[:, 3] <= 480).all()


def test_tiny_yolo_without_bias_edit_detects_nothing(tmp_path: Path) -> None:
    from ultralytics import YOLO

    path = make_tiny_yolo(tmp_path / "silent.pt", always_detect=False)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    result = YOLO(path).predict(image, conf=0.001, verbose=False)[0]
    assert len(result.boxes) == 0
    with pytest.raises(ValueError, match="COCO class"):
        make_tiny_yolo(tmp_path / "bad.pt", detect_class="unicorn")


def test_sample_photos(sample_photos_dir: Path, tmp_path: Path) -> None:
    files = sorted(p for p in sample_photos_dir.rglob("*") if p.is_file())
    assert len(files) == 7  # 6 photos + the EXIF one
    assert {p.suffix for p in files} == {".jpg", ".png", ".webp", ".bmp", ".tiff", ".gif"}
    assert any(p.parent != sample_photos_dir for p in files)  # some are nested
    sizes = set()
    for path in files:
        with Image.open(path) as img:
            img.load()
            sizes.add(img.size)
    assert (480, 640) in sizes and (800, 600) in sizes and (320, 240) in sizes

    with Image.open(sample_photos_dir / EXIF_PHOTO_NAME) as img:
        assert img.size == (400, 300)
        assert img.getexif()[0x0112] == 6
        shown = ImageOps.exif_transpose(img)
    assert shown.size == (300, 400)
    red = np.asarray(shown.convert("RGB"))[:40, -40:].mean(axis=(0, 1))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # stored top-left is shown top-right

    again = make_sample_photos(tmp_path, n=3, seed=1)
    assert len(again) == 4 and all(p.exists() for p in again)
