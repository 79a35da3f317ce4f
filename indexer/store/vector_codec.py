"""How region vectors are stored in SQLite: float16 where that keeps them, else float32.

Embedding vectors are unit vectors whose components are about 1/sqrt(d) (0.04 at 512-d);
float16 keeps 11 significant bits, so a stored vector agrees with its float32 original to a
cosine far above :data:`AGREEMENT` and the database holds half the bytes. A vector float16
cannot keep that well (huge or tiny components) is stored as float32. Each blob says its
own width, given the store's dimension (whole-photo vectors stay float32: duplicate
detection compares them finer than float16 resolves, up to a threshold of exactly 1): 2 bytes a component is float16, 4 is float32, so
stores written before schema 5 and mixed rows read the same way. Every reader of
``Region.vector`` decodes through :func:`decode_vector` or :func:`decode_vectors`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .schema import KIND_IMAGE

AGREEMENT = 0.9999
"""Least cosine between a float16-stored vector and its float32 original."""


def compact_vector(kind: str, size: int, dim: int) -> bool:
    """Whether a region's vector may be stored as float16: an object's, of a known dimension."""
    return kind != KIND_IMAGE and bool(dim) and size == dim


def encode_vector(vector: np.ndarray, *, compact: bool = True) -> bytes:
    """The blob to store: float16 when it agrees with the vector, else float32.

    ``compact=False`` always stores float32 (a store whose dimension is unknown, so that
    readers could not tell the widths apart).
    """
    full = np.ascontiguousarray(vector, dtype=np.float32).ravel()
    if not compact:
        return full.tobytes()
    with np.errstate(over="ignore"):  # out of float16's range: kept as float32 below
        half = full.astype(np.float16)
    wide = half.astype(np.float32)
    norms = float(np.linalg.norm(full)) * float(np.linalg.norm(wide))
    if np.all(np.isfinite(wide)) and norms > 0 and float(full @ wide) / norms >= AGREEMENT:
        return half.tobytes()
    return full.tobytes()


def stored(vector: np.ndarray, *, compact: bool = True) -> np.ndarray:
    """The float32 vector a reader gets back after :func:`encode_vector`."""
    blob = encode_vector(vector, compact=compact)
    return decode_vector(blob, np.asarray(vector).size)


def decode_vector(blob: bytes, dim: int) -> np.ndarray:
    """A stored blob as a float32 vector (a copy); ``dim`` 0 (unknown) means float32."""
    if dim and len(blob) == 2 * dim:
        return np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return np.frombuffer(blob, dtype=np.float32).copy()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored blobs as an (n, dim) float32 matrix: one pass per width, not one per row.

    A store mixes widths (whole-photo vectors stay float32, objects are float16), and
    re-ranking decodes a few hundred of them on every search.
    """
    if not blobs:
        return np.zeros((0, dim), np.float32)
    widths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    if not dim or np.any((widths != 2 * dim) & (widths != 4 * dim)):
        return np.stack([decode_vector(b, dim) for b in blobs])  # unknown or odd widths
    out = np.empty((len(blobs), dim), np.float32)
    for width, dtype in ((2 * dim, np.float16), (4 * dim, np.float32)):
        rows = np.flatnonzero(widths == width)
        if len(rows) == len(blobs):  # one width (every object re-ranking): one join, no scatter
            matrix = np.frombuffer(b"".join(blobs), dtype=dtype).reshape(len(blobs), dim)
            return matrix.astype(np.float32)
        if len(rows):
            joined = b"".join(blobs[int(i)] for i in rows)
            out[rows] = np.frombuffer(joined, dtype=dtype).reshape(len(rows), dim)
    return out
