"""Scoring crops: batching and validating a ``score_fn``, the crops it sees, and the CLIP
adapter (:func:`clip_score_fn`) with its crop-vector cache.

The localisation algorithm only needs a ``score_fn`` that maps crops to one similarity
each, so it knows nothing about CLIP; tests use synthetic scorers.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from indexer.media.decode import to_rgb
from indexer.models.text import normalise_query, unit_rows

from .grid import GridPlan

ScoreFn = Callable[[list[Image.Image]], np.ndarray]

# Occlusion feeds whole images to score_fn; CLIP resizes to 224 px anyway, so masked copies
# are built from a downscaled image to keep a batch of them small in memory.
OCCLUSION_MAX_SIDE = 1024


def score_batches(
    images: Iterator[Image.Image], total: int, score_fn: ScoreFn, batch_size: int
) -> np.ndarray:
    """Run score_fn over lazily built images in batches; validate every answer."""
    out = np.empty(total, dtype=np.float64)
    done = 0
    batch: list[Image.Image] = []
    for img in images:
        batch.append(img)
        if len(batch) == batch_size or done + len(batch) == total:
            out[done : done + len(batch)] = check_scores(score_fn(batch), len(batch))
            done += len(batch)
            batch = []  # a fresh list: score_fn may keep the one it was given
    if done != total or batch:
        raise RuntimeError(f"internal error: built {done + len(batch)} crops, planned {total}")
    return out


def check_scores(scores: object, n: int) -> np.ndarray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"score_fn must return numeric scores: {exc}") from None
    if arr.ndim == 2 and arr.shape == (n, 1):  # e.g. CLIP logits_per_image
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise ValueError(
            f"score_fn must return a 1-D array with one score per crop: "
            f"got shape {arr.shape} for {n} crops"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("score_fn returned non-finite scores (NaN or inf)")
    return arr


def window_crops(arr: np.ndarray, plan: GridPlan) -> Iterator[Image.Image]:
    h, w = arr.shape[:2]
    p = plan.patch
    for r in plan.row_starts:
        y0, y1 = r * p, min((r + plan.win_r) * p, h)
        for c in plan.col_starts:
            x0, x1 = c * p, min((c + plan.win_c) * p, w)
            yield Image.fromarray(arr[y0:y1, x0:x1])


def occluded_images(rgb: Image.Image, plan: GridPlan) -> tuple[Image.Image, Iterator[Image.Image]]:
    """The (downscaled) reference image and a generator of masked copies of it."""
    w, h = rgb.size
    scale = min(1.0, OCCLUSION_MAX_SIDE / max(w, h))
    if scale < 1.0:
        rgb = rgb.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
        )
    arr = np.asarray(rgb)
    sh, sw = arr.shape[:2]
    fill = arr.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    p = plan.patch

    def edge(cell: int, extent: int, size: int) -> int:
        return min(size, round(min(cell * p, extent) * size / extent))

    def gen() -> Iterator[Image.Image]:
        for r in plan.row_starts:
            y0, y1 = edge(r, h, sh), edge(r + plan.win_r, h, sh)
            for c in plan.col_starts:
                x0, x1 = edge(c, w, sw), edge(c + plan.win_c, w, sw)
                masked = arr.copy()
                masked[y0:y1, x0:x1] = fill
                yield Image.fromarray(masked)

    return rgb, gen()


class Embedder(Protocol):
    """What ``clip_score_fn`` needs from ``indexer.models.clip``: L2-normalised float32 vectors."""

    @property
    def dim(self) -> int: ...  # vector width, for empty batches

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...  # (N, D)

    def embed_text(self, query: str) -> np.ndarray: ...  # (D,), prompt-ensembled

    def embed_image(self, image: Image.Image) -> np.ndarray: ...  # (D,)


def clip_score_fn(
    embedder: Embedder,
    *,
    text: str | None = None,
    image: Image.Image | None = None,
) -> ScoreFn:
    """Score crops by cosine similarity to a text or example-image query.

    The query is embedded once here, not per batch: prompt ensembling makes it the costly
    part. Vectors are re-normalised defensively so the scores are true cosines.
    """
    if (text is None) == (image is None):
        raise ValueError("pass exactly one of text= or image= as the query")
    if text is not None:
        normalise_query(text)  # refuses an empty text (QueryError is a ValueError)
        query = unit_rows(embedder.embed_text(text))
    else:
        assert image is not None
        query = unit_rows(embedder.embed_image(to_rgb(image)))
    if query.ndim != 1:
        raise ValueError(f"query embedding must be 1-D, got shape {query.shape}")

    def score(crops: list[Image.Image]) -> np.ndarray:
        if not crops:
            return np.zeros(0, dtype=np.float32)
        embs = unit_rows(embedder.embed_images(crops))
        if embs.shape != (len(crops), query.shape[0]):
            raise ValueError(
                f"embed_images returned shape {embs.shape}, "
                f"expected ({len(crops)}, {query.shape[0]})"
            )
        return (embs @ query).astype(np.float32)

    return score


class CachedEmbedder:
    """An embedder that remembers crop vectors by pixel content.

    Localising several prompts on one photo scores the very same window crops once per
    prompt; with the cache CLIP sees each crop once, and every extra prompt costs only a
    dot product.
    """

    def __init__(self, embedder: Embedder, max_items: int = 4096) -> None:
        self.embedder = embedder
        self.max_items = max_items
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @staticmethod
    def _key(image: Image.Image) -> bytes:
        digest = hashlib.blake2b(image.tobytes(), digest_size=16)
        digest.update(f"{image.size}{image.mode}".encode())
        return digest.digest()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        keys = [self._key(im) for im in images]
        todo = {k: im for k, im in zip(keys, images, strict=True) if k not in self._cache}
        if todo:
            vectors = self.embedder.embed_images(list(todo.values()))
            for key, vec in zip(todo, vectors, strict=True):
                self._cache[key] = vec
            while len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[k] for k in keys])

    def embed_text(self, query: str) -> np.ndarray:
        return self.embedder.embed_text(query)

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return self.embedder.embed_image(image)
