"""The CLIP adapter: clip_score_fn with a fake embedder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retrieval.localize import clip_score_fn, localize
from tests.fixtures import iou, make_image, square_box


class FakeEmbedder:
    """Embeds an image as its normalised mean colour; text as a colour name."""

    NAMES = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([self.embed_image(im) for im in images])

    def embed_image(self, image: Image.Image) -> np.ndarray:
        v = np.asarray(image.convert("RGB"), np.float32).reshape(-1, 3).mean(axis=0) + 1e-3
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed_text(self, query: str) -> np.ndarray:
        return np.array(self.NAMES[query], np.float32)


def solid(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (16, 16), colour)


def test_clip_score_fn_text_ranking() -> None:
    score = clip_score_fn(FakeEmbedder(), text="red")
    crops = [solid((0, 0, 255)), solid((255, 0, 0)), solid((128, 128, 128)), solid((255, 128, 0))]
    scores = score(crops)
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert list(np.argsort(-scores)) == [1, 3, 2, 0]  # red, orange, grey, blue
    assert scores[1] == pytest.approx(1.0, abs=1e-3)
    assert score([]).shape == (0,)


def test_clip_score_fn_image_query() -> None:
    score = clip_score_fn(FakeEmbedder(), image=solid((0, 0, 200)).convert("P"))
    scores = score([solid((200, 0, 0)), solid((20, 20, 180)), solid((90, 90, 90))])
    assert list(np.argsort(-scores)) == [1, 2, 0]


def test_clip_score_fn_needs_exactly_one_query() -> None:
    with pytest.raises(ValueError):
        clip_score_fn(FakeEmbedder())
    with pytest.raises(ValueError):
        clip_score_fn(FakeEmbedder(), text="red", image=solid((1, 2, 3)))


def test_clip_score_fn_drives_localize() -> None:
    square = (200, 80, 110)
    score = clip_score_fn(FakeEmbedder(), text="red")
    loc = localize(make_image(400, 300, [square]), score)
    assert loc.best is not None
    assert iou(loc.best.box, square_box(*square)) >= 0.5
