"""Indexer: arguments checked before any work, a run's stages, progress and model checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.errors import ObjsearchError, StoreError, UsageError
from indexer.indexing import Indexer, IndexStats
from indexer.store import Store
from tests.fixtures import Models, make_indexer, write_photo


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ObjsearchError, match="Unknown FAISS index type"):
        Indexer(tmp_path / "index", index_type="nope")
    with pytest.raises(UsageError, match="megapixel limit"):
        Indexer(tmp_path / "index", max_megapixels=0)
    assert not (tmp_path / "index").exists()


def test_a_run_reports_its_stages_progress_and_counts(models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(6):
        write_photo(folder / f"p{i}.jpg", seed=i)
    (folder / "bad.jpg").write_bytes(b"no photo")
    progress: list[tuple[int, int]] = []
    indexer = make_indexer(models, tmp_path / "index", batch_size=4)
    stats = indexer.index([folder], progress=lambda done, total: progress.append((done, total)))
    assert isinstance(stats, IndexStats)
    assert (stats.scanned, stats.indexed, stats.failures) == (7, 6, 1)
    assert stats.to_dict()["failures"] == 1 and stats.seconds > 0
    assert progress[0] == (0, 7) and progress[-1] == (7, 7)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    stages = {"scan", "decode", "detect", "crop", "preprocess", "embed", "store", "faiss"}
    assert stages <= set(indexer.timings)
    assert indexer.models_started_at is not None
    with Store(tmp_path / "index") as store:
        assert store.counts().photos == 6 and store.faiss_is_fresh()
        assert store.get_meta("detector") and store.get_meta("clip_model")


def test_whole_photos_only_store_no_objects(models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg", seed=1)
    stats = make_indexer(models, tmp_path / "index", detect_objects=False).index([folder])
    assert (stats.indexed, stats.objects) == (1, 0)


def test_an_index_of_another_model_is_refused_before_anything_changes(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg", seed=1)
    make_indexer(models, tmp_path / "index").index([folder])
    with Store(tmp_path / "index") as store:
        probe = json.loads(store.get_meta("clip_probe") or "[]")
        store.set_meta(clip_probe=json.dumps([-v for v in probe]))  # other weights, same name
        generation = store.generation
    write_photo(folder / "b.jpg", seed=2)
    with pytest.raises(StoreError, match="vectors are not comparable"):
        make_indexer(models, tmp_path / "index").index([folder])
    with Store(tmp_path / "index") as store:
        assert store.generation == generation and store.counts().photos == 1
