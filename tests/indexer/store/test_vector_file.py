"""The derived FAISS file (:mod:`indexer.store.vector_file`): status reports it apart from SQLite, and readers write it back.

SQLite is the truth; ``vectors.faiss`` is derived from it. ``status`` calls an index
consistent when SQLite is, and reports a missing or stale FAISS file separately. The first
search that has to rebuild the file in memory also persists it (atomically, under a lock
that never makes the writer or other readers wait), so the next cold search loads it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from indexer.store import Store
from indexer.store.vector_file import count_temp_files, file_stamp, remove_temp_files
from indexer.store.vectors import TEMP_PREFIX, TEMP_SUFFIX
from retrieval import Searcher
from retrieval.cli import app
from tests.fixtures import REPO_ROOT, Models, child_env, make_indexer
from tests.fixtures.store_records import random_photo, random_store

FAISS_FILE = "vectors.faiss"


def status(index_dir: Path) -> dict:
    result = CliRunner().invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def index_dir(models: Models, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((REPO_ROOT / "data").iterdir()):
        if src.suffix in (".jpg", ".png", ".webp"):
            shutil.copy(src, folder / src.name)
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([folder])
    return index_dir


def regions(health: dict) -> int:
    return health["objects"] + health["images"]


def damage(index_dir: Path) -> None:
    """Overwrite the FAISS file with 1,000 random bytes."""
    (index_dir / FAISS_FILE).write_bytes(np.random.default_rng(0).bytes(1000))


def test_status_consistent_speaks_of_sqlite(index_dir: Path) -> None:
    health = status(index_dir)
    assert health["consistent"] and health["vectors_file"] == "fresh"
    assert health["vectors"] == regions(health)

    (index_dir / FAISS_FILE).unlink()
    health = status(index_dir)
    assert health["consistent"] is True, health["problems"]
    assert health["problems"] == []
    assert health["vectors_file"] == "stale (rebuilt on next use)"

    damage(index_dir)
    health = status(index_dir)
    assert health["consistent"] is True
    assert health["vectors_file"] == "stale (rebuilt on next use)"

    result = CliRunner().invoke(app, ["status", "--index", str(index_dir)])
    assert "rebuilt on next use" in result.stdout


def test_damaged_vectors_file_is_rebuilt_and_persisted_by_a_search(
    index_dir: Path, models: Models
) -> None:
    damage(index_dir)
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        assert searcher.search(text="a ball", top_k=3)
    health = status(index_dir)
    assert health["vectors_file"] == "fresh"
    assert health["vectors"] == regions(health) > 0
    assert (index_dir / FAISS_FILE).stat().st_size != 1000
    assert not [p for p in os.listdir(index_dir) if p.endswith(".tmp")]


def test_command_line_search_persists_a_missing_vectors_file(
    index_dir: Path, models: Models
) -> None:
    (index_dir / FAISS_FILE).unlink()
    result = CliRunner().invoke(app, ["search", "a ball", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)
    assert status(index_dir)["vectors_file"] == "fresh"


def test_reader_leaves_the_file_alone_while_another_holds_the_vectors_lock(
    index_dir: Path, models: Models
) -> None:
    damage(index_dir)
    fd = os.open(index_dir / "vectors.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with Searcher(index_dir, embedder=models.embedder) as searcher:
            assert searcher.search(text="a ball", top_k=3)  # uses its in-memory rebuild
        assert (index_dir / FAISS_FILE).stat().st_size == 1000  # untouched
    finally:
        os.close(fd)
    assert status(index_dir)["vectors_file"] == "stale (rebuilt on next use)"


def test_reader_does_not_wait_for_the_writer_lock(index_dir: Path, models: Models) -> None:
    """An index run holds the writer lock; a reader still rebuilds and persists FAISS."""
    damage(index_dir)
    fd = os.open(index_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with Searcher(index_dir, embedder=models.embedder) as searcher:
            assert searcher.search(text="a ball", top_k=3)
    finally:
        os.close(fd)
    assert status(index_dir)["vectors_file"] == "fresh"


READER = """
import json, sys
from indexer.store import Store
from indexer.store.vector_file import count_temp_files, file_stamp, remove_temp_files
from indexer.store.vectors import TEMP_PREFIX, TEMP_SUFFIX
from retrieval import Searcher
with Searcher(sys.argv[1]) as searcher:
    print(json.dumps([r.region_id for r in searcher.search(text="a ball", top_k=3)]))
"""


def test_two_readers_rebuilding_at_once_both_answer(index_dir: Path) -> None:
    damage(index_dir)
    env = child_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(index_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        answers.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert answers[0] == answers[1] and answers[0]
    health = status(index_dir)
    assert health["vectors_file"] == "fresh" and health["vectors"] == regions(health)
    assert not [p for p in os.listdir(index_dir) if p.endswith(".tmp")]


# -- the lifecycle on a store of random vectors (no model) --------------------------------


def test_file_stamp_tells_two_files_of_one_size_apart(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"\0" * 70_000 + b"one")
    b.write_bytes(b"\0" * 70_000 + b"two")
    assert file_stamp(str(a)) != file_stamp(str(b))
    assert file_stamp(str(a)).startswith("70003:")
    b.write_bytes(a.read_bytes())
    assert file_stamp(str(a)) == file_stamp(str(b))  # a copy is the same file


def test_temp_files_of_unfinished_saves_are_counted_then_removed(tmp_path: Path) -> None:
    (tmp_path / f"{TEMP_PREFIX}x{TEMP_SUFFIX}").write_bytes(b"half a file")
    (tmp_path / "vectors.faiss").write_bytes(b"keep")
    assert count_temp_files(str(tmp_path)) == 1
    assert remove_temp_files(str(tmp_path)) == 1
    assert sorted(os.listdir(tmp_path)) == ["vectors.faiss"]


def test_a_new_main_segment_clears_the_tombstones_of_the_old_one(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    with Store(index_dir) as store:
        store.commit_batch([], remove_photo_ids=[1])
        assert store.vector_status().tombstones == 2 and not store.faiss_is_fresh()
        index = store.compact_vectors()
        status = store.vector_status()
        assert store.faiss_is_fresh()
    assert (status.tombstones, status.delta, index.ntotal) == (0, 0, 6)
    assert status.main is not None and status.main.count == 6


def test_a_readers_rebuild_for_an_old_generation_is_not_written(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    (index_dir / FAISS_FILE).unlink()
    with Store(index_dir) as store:
        generation = store.generation
        index = store.rebuild_vectors()
        store.commit_batch([random_photo("late", 9)])  # the writer moved on meanwhile
        assert not store.persist_vectors(index, generation)
        assert not (index_dir / FAISS_FILE).exists()
        assert store.persist_vectors(store.rebuild_vectors(), store.generation)
        live, from_file = store.load_vectors()
    assert from_file and live.ntotal == 10
