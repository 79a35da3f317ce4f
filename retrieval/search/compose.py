"""Query vectors built from several parts: text plus an example, minus negatives.

All parts are unit CLIP vectors in one space, so they combine linearly:

* text and an example (a photo, a stored region or photo): ``(1 - w) * text + w * example``,
  renormalised, with ``w`` the example weight (``--image-weight``, default 0.5);
* negatives: ``query - n_weight * sum(negatives)``, renormalised: each negative prompt pushes
  the query away from itself by ``n_weight`` (``--not-weight``, default 0.5), so results
  that look like a negative lose score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexer.errors import QueryError

from .fields import check_range

DEFAULT_IMAGE_WEIGHT = 0.5
DEFAULT_NOT_WEIGHT = 0.5
MAX_NOT_WEIGHT = 2.0


def unit(vector: np.ndarray, what: str = "The query") -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-6:
        raise QueryError(f"{what} cancels out to nothing: use smaller weights.")
    return (vector / norm).astype(np.float32)


def blend(text: np.ndarray, example: np.ndarray, example_weight: float) -> np.ndarray:
    """The normalised weighted sum of a text vector and an example vector."""
    check_range("image_weight", example_weight, 0, 1)
    return unit((1.0 - example_weight) * text + example_weight * example)


def push_away(query: np.ndarray, negatives: Sequence[np.ndarray], weight: float) -> np.ndarray:
    """Move ``query`` away from every negative vector by ``weight``, renormalised."""
    if not len(negatives):
        return query
    check_range("not_weight", weight, 0, MAX_NOT_WEIGHT)
    if weight == 0:
        return query
    return unit(
        query - weight * np.sum(np.stack(negatives), axis=0), "The query minus the negative prompts"
    )
