"""Model identity: is this embedding model the one an index was built with?

The family and embedding size must match what the index recorded (indexes from before
families were recorded are CLIP). Within a family, models are compared by the vectors they
give a fixed probe text, not by name, so the same weights loaded from a hub id or from a
local folder are recognised as one model.
"""

from __future__ import annotations

import json

import numpy as np

from .clip import ClipEmbedder
from .families import DEFAULT_FAMILY, family_title

# Probe vectors of two loadings of the same weights agree to ~1e-6 in fp32 and stay above
# 0.99 across fp32/bf16/fp16; different models land near 0.
SAME_MODEL_COSINE = 0.95


def model_record(embedder: ClipEmbedder) -> dict[str, object]:
    """The meta entries that record ``embedder`` in a new index."""
    probe = embedder.fingerprint()
    return {
        "clip_model": embedder.model_id,
        "model_family": embedder.family.name,
        "embed_dim": embedder.dim,
        "clip_probe": json.dumps(probe.round(6).tolist()),
    }


def model_mismatch(meta: dict[str, str], embedder: ClipEmbedder) -> str | None:
    """Why ``embedder`` cannot serve an index with this ``meta``, or None when it can."""
    stored_family = meta.get("model_family") or DEFAULT_FAMILY
    stored_dim = int(meta.get("embed_dim", 0))
    same = stored_family == embedder.family.name and stored_dim == embedder.dim
    if same and meta.get("clip_probe"):
        stored = np.asarray(json.loads(meta["clip_probe"]), dtype=np.float32)
        cosine = float(stored @ embedder.fingerprint()) / max(float(np.linalg.norm(stored)), 1e-12)
        same = cosine >= SAME_MODEL_COSINE
    if same:
        return None
    return (
        f"This index was built with {family_title(stored_family)} model "
        f"{meta.get('clip_model')!r} ({stored_dim}-d), but {embedder.family.title} model "
        f"{embedder.model_id!r} ({embedder.dim}-d) was given; their vectors are not comparable. "
        f"Use --clip-model {meta.get('clip_model')} (or the same weights from a local folder), "
        "or build a new index."
    )
