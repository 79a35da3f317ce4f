"""Stored vector widths (:mod:`indexer.store.vector_codec`): float16 where it agrees.

Measured on clustered 512-d unit vectors like CLIP's (most variance in a few directions),
the agreement of each float16-stored vector with its float32 original is the number the
store promises: a cosine of at least 0.9999.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update

from indexer.store import (
    KIND_IMAGE,
    KIND_OBJECT,
    NewPhoto,
    NewRegion,
    Region,
    Store,
    decode_vector,
    decode_vectors,
)
from indexer.store.doctor import check
from indexer.store.vector_codec import AGREEMENT, encode_vector, stored
from tests.indexer.store.test_ivf import Clustered


def rewrite(store: Store, region_id: int, blob: bytes) -> None:
    with store.session() as s, s.begin():
        s.execute(update(Region).where(Region.id == region_id).values(vector=blob))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_clip_like_vectors_are_stored_as_float16_within_the_agreement() -> None:
    vectors = Clustered(seed=3).draw(2000)
    blobs = [encode_vector(v) for v in vectors]
    assert {len(b) for b in blobs} == {2 * 512}  # every one fits float16: half the bytes
    back = decode_vectors(blobs, 512)
    assert back.dtype == np.float32 and back.shape == vectors.shape
    agreement = cosines(back, vectors)
    assert agreement.min() >= AGREEMENT
    assert agreement.min() > 0.99999  # the measured margin: far above the promise


def test_vectors_float16_cannot_keep_stay_float32() -> None:
    huge = np.full(16, 1e6, np.float32)  # beyond float16's range
    tiny = np.zeros(16, np.float32)
    tiny[0], tiny[1] = 1.0, 1e-9  # fine, but one component below float16's resolution
    assert len(encode_vector(huge)) == 64
    np.testing.assert_array_equal(stored(huge), huge)
    assert len(encode_vector(np.ones(16, np.float32), compact=False)) == 64
    # mixed widths decode row by row; an unknown dimension (0) reads float32
    mixed = decode_vectors([encode_vector(huge), encode_vector(np.ones(16))], 16)
    np.testing.assert_allclose(mixed, np.stack([huge, np.ones(16)]), rtol=1e-3)
    np.testing.assert_array_equal(decode_vector(huge.tobytes(), 0), huge)


def test_a_store_writes_object_vectors_as_float16_and_doctor_accepts_both_widths(
    tmp_path: Path,
) -> None:
    vectors = Clustered(seed=4).draw(3)
    with Store(tmp_path / "index", create=True) as store:
        store.set_meta(embed_dim=512)
        regions = [
            NewRegion(KIND_IMAGE, (0.0, 0.0, 4.0, 4.0), vectors[0]),
            NewRegion(KIND_OBJECT, (1.0, 1.0, 2.0, 2.0), vectors[1], "cat", 0.5),
        ]
        result = store.commit_batch([NewPhoto("/p/a.jpg", 1, 1, 4, 4, "h", "", regions)])
        whole, region_id = (int(i) for i in result.added_ids)
        with store.session() as s:
            sizes = dict(s.execute(select(Region.id, func.length(Region.vector))).all())
        # objects float16; the whole photo float32 (duplicate detection needs its precision)
        assert sizes == {whole: 4 * 512, region_id: 2 * 512}
        np.testing.assert_array_equal(store.region_vector(whole), vectors[0])
        got = store.region_vector(region_id)
        assert got is not None and cosines(got[None], vectors[1:2])[0] >= AGREEMENT
        # what the batch hands on (for an in-memory delta) is what readers get back
        np.testing.assert_array_equal(result.added_vectors[1], got)
        rewrite(store, region_id, vectors[1].astype(np.float32).tobytes())  # before schema 5
        assert check(store).consistent
        np.testing.assert_array_equal(store.region_vector(region_id), vectors[1].astype(np.float32))
        rewrite(store, region_id, vectors[2].astype(np.float64).tobytes())
        health = check(store)
        assert not health.consistent and "wrong size" in " ".join(health.problems)


def test_mixed_widths_decode_in_one_matrix_as_row_by_row() -> None:
    """Re-ranking decodes float32 whole-photo and float16 object blobs together."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((9, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    blobs = [encode_vector(v, compact=bool(i % 3)) for i, v in enumerate(vectors)]
    assert {len(b) for b in blobs} == {32, 64}
    matrix = decode_vectors(blobs, 16)
    assert matrix.dtype == np.float32 and matrix.shape == (9, 16)
    assert np.array_equal(matrix, np.stack([decode_vector(b, 16) for b in blobs]))
    assert np.array_equal(matrix[0], vectors[0])  # float32 kept exactly


@pytest.mark.parametrize(
    "widths",
    [
        pytest.param([2] * 5, id="all-float16"),
        pytest.param([4, 2, 2, 4], id="mixed"),
        pytest.param([4, 0], id="total-adds-up-but-one-blob-is-short"),
    ],
)
def test_decode_vectors_takes_the_float16_shortcut_only_when_every_blob_is_float16(
    widths: list[int],
) -> None:
    """All-float16 lists (every object re-ranking) decode in one join; a list whose total
    length merely adds up to that must not: each blob keeps its own width."""
    rng = np.random.default_rng(4)
    dim = 8
    dtypes = {2: np.float16, 4: np.float32}
    blobs = [rng.standard_normal(dim).astype(dtypes[w]).tobytes() if w else b"" for w in widths]
    if 0 in widths:  # corruption (doctor names it): refused, not read as float16 garbage
        with pytest.raises(ValueError):
            decode_vectors(blobs, dim)
        return
    matrix = decode_vectors(blobs, dim)
    assert matrix.dtype == np.float32
    assert np.array_equal(matrix, np.stack([decode_vector(b, dim) for b in blobs]))
