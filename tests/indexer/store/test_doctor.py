"""``status`` checks and ``doctor`` repairs on real index folders (random vectors, no model).

The defects are made by hand in SQLite (an orphan region, a photo without its whole-photo
region, a stale FAISS file) the way a crash, a hand edit or an old bug could leave them.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.errors import StoreError
from indexer.store import DB_NAME, FAISS_NAME, Store
from indexer.store.doctor import VECTORS_FRESH, VECTORS_STALE, check, read_only_findings, repair
from retrieval.cli import app
from tests.fixtures.mounts import read_only
from tests.fixtures.store_records import random_photo, random_store


def health(index_dir: Path):
    with Store(index_dir) as store:
        return check(store)


def raw(index_dir: Path, sql: str) -> None:
    """Change the database behind the store's back (foreign keys off, as a hand edit)."""
    with sqlite3.connect(index_dir / DB_NAME) as conn:
        conn.execute(sql)


def test_a_fresh_index_is_consistent_and_needs_no_repair(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    before = health(index_dir)
    assert before.consistent and before.problems == []
    assert before.vectors_file == VECTORS_FRESH and before.vectors == 8
    assert (before.photos, before.images, before.objects) == (4, 4, 4)
    assert repair(str(index_dir)) == []


def test_orphans_and_photos_without_a_whole_photo_region_are_found_then_dropped(
    tmp_path: Path,
) -> None:
    index_dir = random_store(tmp_path / "index")
    raw(index_dir, "UPDATE regions SET photo_id = 999 WHERE id = 2")  # p0's object: an orphan
    raw(index_dir, "DELETE FROM regions WHERE id = 3")  # p1 loses its whole-photo region
    found = health(index_dir)
    assert not found.consistent
    assert "1 regions belong to no photo" in found.problems
    assert "1 photos have no whole-photo region" in found.problems

    actions = repair(str(index_dir))
    assert "dropped 1 regions that belonged to no photo" in actions
    assert any(a.startswith("dropped 1 incomplete photos") for a in actions)
    assert any(a.startswith("rebuilt the FAISS index from SQLite (5 vectors") for a in actions)
    after = health(index_dir)
    assert after.consistent and after.photos == 3 and after.vectors == 5
    assert after.vectors_file == VECTORS_FRESH and after.vectors_pending == 0


def test_a_missing_faiss_file_is_stale_not_inconsistent_and_status_writes_nothing(
    tmp_path: Path,
) -> None:
    index_dir = random_store(tmp_path / "index")
    (index_dir / FAISS_NAME).unlink()
    listing = sorted(os.listdir(index_dir))
    found = health(index_dir)
    assert found.consistent
    assert found.vectors_file == VECTORS_STALE
    assert found.vectors_detail == "the FAISS file is missing"
    assert sorted(os.listdir(index_dir)) == listing
    assert repair(str(index_dir)) == ["rebuilt the FAISS index from SQLite (8 vectors, flat)"]
    assert health(index_dir).vectors_file == VECTORS_FRESH


def test_pending_changes_are_reported_and_folded_in_by_doctor(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    with Store(index_dir) as store:
        store.commit_batch([random_photo("extra", 50)])
    assert health(index_dir).vectors_pending == 2  # the delta: one photo, two regions
    assert repair(str(index_dir))[-1].startswith("rebuilt the FAISS index")
    assert health(index_dir).vectors_pending == 0


def test_repair_of_a_folder_without_an_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="No objsearch index"):
        repair(str(tmp_path))


def test_read_only_findings_name_a_damaged_database(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / DB_NAME).write_bytes(b"not a database at all" * 200)
    assert read_only_findings(str(index_dir)) == [
        "the database is damaged (SQLite's structural check fails)"
    ]


def test_doctor_on_a_read_only_mount_says_so_and_what_it_could_check(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    raw(index_dir, "UPDATE regions SET photo_id = 999 WHERE id = 2")
    with Store(index_dir) as store:  # the WAL folded into the file: nothing left to write
        store.engine.dispose()
    listing = sorted(os.listdir(index_dir))
    with read_only(index_dir):
        result = CliRunner().invoke(app, ["doctor", "--index", str(index_dir)])
        assert sorted(os.listdir(index_dir)) == listing
    assert result.exit_code == 4, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"The index folder {index_dir} is read-only, so doctor repaired nothing" in (
        result.stderr
    )
    for finding in (
        "the database passes SQLite's structural check",
        "problem: 1 regions belong to no photo",
        "the FAISS file is",
    ):
        assert finding in result.stderr
    assert health(index_dir).problems == ["1 regions belong to no photo"]  # nothing repaired
