"""The image half every embedder shares: preprocess, then embed in batches, normalised.

:class:`~indexer.models.clip.ClipEmbedder` (any backend, loaded from the model's files)
and :class:`~indexer.models.converted.ConvertedEmbedder` (OpenVINO, from the conversion
cache alone) differ in how they run the image tower, not in what they do around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from .lifecycle import serialised
from .text import unit_rows

Preprocess = Callable[[Sequence[Image.Image]], dict[str, np.ndarray]]


class ImageQueries:
    """Embeds photos and crops; subclasses set ``pixels``, ``batch_size``, ``dim`` and
    implement :meth:`image_features` (unnormalised features of preprocessed inputs)."""

    pixels: Preprocess
    batch_size: int
    dim: int

    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def preprocess(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        """The image tower's inputs for a batch (``pixel_values`` and, for NaFlex, more)."""
        return self.pixels(images)

    @serialised
    def embed_inputs(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Embed already-preprocessed image inputs (see :meth:`preprocess`)."""
        return unit_rows(self.image_features(inputs))

    @serialised
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dim) normalised vectors, computed in batches of ``batch_size``."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            self.embed_inputs(self.preprocess(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(parts)

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return self.embed_images([image])[0]


def example_images() -> list[Image.Image]:
    """Two photos of different shapes: example inputs for tracing the image tower."""
    return [Image.new("RGB", (64, 48), (120, 80, 40)), Image.new("RGB", (40, 90), (10, 200, 90))]
