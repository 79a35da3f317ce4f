"""The store's records: what they count, and that they cross process boundaries intact."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from indexer.media.metadata import PhotoMetadata
from indexer.store.records import Counts, FailureRecord, NewText, PhotoMove, PhotoState
from tests.fixtures.store_records import random_photo


def test_counts_regions_are_the_vector_regions_only() -> None:
    counts = Counts(photos=3, objects=5, images=3, failures=1, texts=7, read=2)
    assert counts.regions == 8  # text lines have no vector


def test_a_photo_record_survives_pickling_with_its_vectors_text_and_metadata() -> None:
    """Ray actors send records to the driver pickled: nothing may be lost on the way."""
    photo = random_photo("p", 3, objects=2)
    photo.metadata = PhotoMetadata("2024-01-02T03:04:05", "exif-original", "Cam", 1.5, 2.5)
    photo.texts = [NewText((1.0, 2.0, 3.0, 4.0), "BAKERY", 0.9)]
    photo.text_engine = "rapidocr"
    back = pickle.loads(pickle.dumps(photo, protocol=5))
    assert back.path == photo.path and back.metadata == photo.metadata
    assert back.texts == photo.texts and back.text_engine == "rapidocr"
    assert len(back.regions) == 3
    for a, b in zip(back.regions, photo.regions, strict=True):
        assert (a.kind, a.box, a.label) == (b.kind, b.box, b.label)
        np.testing.assert_array_equal(a.vector, b.vector)


def test_records_that_describe_a_change_cannot_be_altered() -> None:
    move = PhotoMove(1, "/new/path.jpg", 10, 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        move.path = "/elsewhere.jpg"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FailureRecord("/a.jpg", "decode", "bad").reason = "fine"  # type: ignore[misc]


def test_photo_states_are_slotted_and_default_to_known_metadata() -> None:
    state = PhotoState(1, 10, 20, "hash")
    assert state.has_metadata
    assert not hasattr(state, "__dict__")  # 200,000 of them per run: no per-object dict
