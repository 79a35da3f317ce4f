"""The models of a run against the index: recorded once, a different one refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from indexer.errors import StoreError
from indexer.indexing.model_check import check_model_matches, record_detector, record_precision
from indexer.models.identity import ModelIdentity
from indexer.store import Store
from tests.fixtures import Models


def test_a_new_index_records_the_model_and_the_same_model_passes(
    models: Models, tmp_path: Path
) -> None:
    with Store(tmp_path, create=True) as store:
        check_model_matches(store, models.embedder)  # type: ignore[arg-type]
        recorded = store.meta()
        check_model_matches(store, models.embedder)  # type: ignore[arg-type]
        record_precision(store, models.embedder)  # type: ignore[arg-type]
        record_detector(store, "yolo-tiny")
        after = store.meta()
    assert recorded["clip_model"] and int(recorded["embed_dim"]) > 0
    assert after["precision"] == models.embedder.precision  # type: ignore[attr-defined]
    assert after["detector"] == "yolo-tiny"


def test_a_different_model_is_refused_with_the_reason(models: Models, tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        check_model_matches(store, models.embedder)  # type: ignore[arg-type]
        identity = ModelIdentity.of(models.embedder)  # type: ignore[arg-type]
        other = dataclasses.replace(identity, probe=-identity.probe)  # other weights
        with pytest.raises(StoreError):
            check_model_matches(store, other)
        record_detector(store, None)
        assert store.get_meta("detector") is None
