"""Store: opening old index folders, typed batch records, corruption as its own error."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import CorruptIndexError, StoreError
from indexer.store import (
    DB_NAME,
    KIND_IMAGE,
    FailureRecord,
    NewPhoto,
    NewRegion,
    PhotoMove,
    PhotoTouch,
    Store,
)
from indexer.store.migrations import upgrade
from indexer.store.schema import SCHEMA_VERSION
from retrieval import Searcher
from tests.fixtures import FIXTURES

SCHEMA1 = FIXTURES / "index-schema1"


def test_index_written_by_schema_1_opens_and_searches(tmp_path: Path, tiny_clip_dir: Path) -> None:
    """An index folder built before the package reshaping (its FAISS file left out) opens
    unchanged: every region survives, FAISS is rebuilt from SQLite, and search works."""
    index_dir = tmp_path / "old-index"
    index_dir.mkdir()
    shutil.copy(SCHEMA1 / DB_NAME, index_dir / DB_NAME)
    expected = json.loads((SCHEMA1 / "regions.json").read_text())["regions"]

    with Store(index_dir) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        stored = [
            [os.path.basename(photo.path), r.kind, [round(v, 2) for v in r.box], r.label]
            for photo, regions in store.iter_photos()
            for r in regions
        ]
        index, from_file = store.load_vectors()
        assert not from_file and index.ntotal == len(expected)
    assert sorted(map(json.dumps, stored)) == sorted(map(json.dumps, expected))

    with Searcher(index_dir, clip_model=str(tiny_clip_dir), device="cpu") as searcher:
        results = searcher.search(text="a cat", top_k=10)
        assert len(results) == len({row[0] for row in expected})  # every photo is reachable
        assert all(r.kind in ("object", "image") for r in results)
        assert searcher.vectors.ntotal == len(expected)
    with Store(index_dir) as store:  # the first reader wrote its rebuild back
        assert store.faiss_is_fresh()
        index, from_file = store.load_vectors()
        assert from_file and index.ntotal == len(expected)


def _photo(path: str, dim: int = 4, objects: int = 1) -> NewPhoto:
    rng = np.random.default_rng(len(path))
    regions = [NewRegion(KIND_IMAGE, (0.0, 0.0, 10.0, 8.0), rng.random(dim, np.float32))]
    regions += [
        NewRegion("object", (1.0, 1.0, 5.0, 5.0), rng.random(dim, np.float32), "cat", 0.9)
        for _ in range(objects)
    ]
    return NewPhoto(path, 100, 1, 10, 8, f"hash-{path}", "1 cat", regions)


def test_commit_batch_takes_typed_records(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        first = store.commit_batch([_photo("/p/a.jpg"), _photo("/p/b.jpg", objects=2)])
        assert len(first.added_ids) == 5 and first.added_vectors.shape == (5, 4)
        states = store.photo_states()
        a, b = states["/p/a.jpg"], states["/p/b.jpg"]

        second = store.commit_batch(
            [],
            [FailureRecord("/p/bad.jpg", "decode", "corrupt")],
            moves=[PhotoMove(a.id, "/p/moved.jpg", 101, 2)],
            touches=[PhotoTouch(b.id, 102, 3)],
        )
        assert second.generation == first.generation + 1
        states = store.photo_states()
        assert "/p/a.jpg" not in states and states["/p/moved.jpg"].id == a.id
        assert (states["/p/moved.jpg"].size, states["/p/moved.jpg"].mtime_ns) == (101, 2)
        assert (states["/p/b.jpg"].size, states["/p/b.jpg"].mtime_ns) == (102, 3)
        assert [(f.path, f.stage, f.reason) for f in store.failures()] == [
            ("/p/bad.jpg", "decode", "corrupt")
        ]

        third = store.commit_batch([_photo("/p/b.jpg")], remove_photo_ids=[a.id])
        # a's regions and b's old ones all go
        assert sorted(third.removed_ids.tolist()) == sorted(first.added_ids.tolist())
        assert store.counts().photos == 1 and store.counts().regions == 2


def test_garbage_database_is_a_corrupt_index_error(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptIndexError, match="objsearch doctor"):
        Store(index_dir)
    assert issubclass(CorruptIndexError, StoreError)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        with pytest.raises(StoreError, match="newer objsearch"):
            upgrade(store.db_path, SCHEMA_VERSION + 1)
        assert upgrade(store.db_path, SCHEMA_VERSION) == SCHEMA_VERSION
