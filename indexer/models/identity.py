"""Model identity: is this embedding model the one an index was built with?

The family and embedding size must match what the index recorded (indexes from before
families were recorded are CLIP). Within a family, models are compared by the vectors they
give a fixed probe text, not by name, so the same weights loaded from a hub id or from a
local folder are recognised as one model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .families import DEFAULT_FAMILY, family_title

if TYPE_CHECKING:  # either encoder: identity needs the text side only
    from .clip import ClipEmbedder
    from .text import OpenVinoTextEncoder

    Encoder = ClipEmbedder | OpenVinoTextEncoder

# Probe vectors of two loadings of the same weights agree to ~1e-6 in fp32 and stay above
# 0.99 across fp32/bf16/fp16; different models land near 0.
SAME_MODEL_COSINE = 0.95


@dataclass(frozen=True)
class ModelIdentity:
    """What identifies a loaded embedding model: family, name, size and probe vector.

    A record rather than the model itself, so a model loaded elsewhere (on a Ray actor) can
    be checked against an index by the process that writes it.
    """

    model_id: str
    dim: int
    probe: np.ndarray
    family: str = DEFAULT_FAMILY  # a family name (see families.py), so the record pickles small

    @classmethod
    def of(cls, embedder: Encoder) -> ModelIdentity:
        return cls(embedder.model_id, embedder.dim, embedder.fingerprint(), embedder.family.name)


def _identity(model: Encoder | ModelIdentity) -> ModelIdentity:
    return model if isinstance(model, ModelIdentity) else ModelIdentity.of(model)


def model_record(model: Encoder | ModelIdentity) -> dict[str, object]:
    """The meta entries that record ``model`` in a new index."""
    identity = _identity(model)
    return {
        "clip_model": identity.model_id,
        "model_family": identity.family,
        "embed_dim": identity.dim,
        "clip_probe": json.dumps(identity.probe.round(6).tolist()),
    }


def model_mismatch(meta: dict[str, str], model: Encoder | ModelIdentity) -> str | None:
    """Why ``model`` cannot serve an index with this ``meta``, or None when it can."""
    embedder = _identity(model)
    stored_family = meta.get("model_family") or DEFAULT_FAMILY
    stored_dim = int(meta.get("embed_dim", 0))
    same = stored_family == embedder.family and stored_dim == embedder.dim
    if same and meta.get("clip_probe"):
        stored = np.asarray(json.loads(meta["clip_probe"]), dtype=np.float32)
        cosine = float(stored @ embedder.probe) / max(float(np.linalg.norm(stored)), 1e-12)
        same = cosine >= SAME_MODEL_COSINE
    if same:
        return None
    return (
        f"This index was built with {family_title(stored_family)} model "
        f"{meta.get('clip_model')!r} ({stored_dim}-d), but {family_title(embedder.family)} model "
        f"{embedder.model_id!r} ({embedder.dim}-d) was given; their vectors are not comparable. "
        f"Use --clip-model {meta.get('clip_model')} (or the same weights from a local folder), "
        "or build a new index."
    )
