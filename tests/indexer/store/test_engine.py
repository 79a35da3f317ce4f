"""Opening an index database: missing and unwritable folders, meta, read-only mounts."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from indexer.errors import CorruptIndexError, IndexLockedError, StoreError
from indexer.store import DB_NAME, Store
from tests.fixtures.mounts import read_only
from tests.fixtures.store_records import random_photo, random_store


def test_opening_a_folder_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="objsearch index PHOTOS_DIR --index"):
        Store(tmp_path)
    assert not (tmp_path / DB_NAME).exists()


def test_create_makes_the_folder_and_starts_at_generation_zero(tmp_path: Path) -> None:
    with Store(tmp_path / "a" / "index", create=True) as store:
        assert store.generation == 0
        store.set_meta(clip_model="m", embed_dim=8)
        assert store.get_meta("embed_dim") == "8"  # meta holds strings
        assert store.meta()["clip_model"] == "m"
        assert store.get_meta("nothing") is None


def test_a_database_that_is_not_an_index_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    with pytest.raises(StoreError, match="is not an objsearch index"):
        Store(tmp_path)
    (tmp_path / DB_NAME).unlink()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("CREATE TABLE other (a)")
    with pytest.raises(CorruptIndexError, match="objsearch doctor"):
        Store(tmp_path)  # no meta table at all: unreadable as an index


def test_lock_refuses_a_second_writer_and_close_releases_it(tmp_path: Path) -> None:
    first = Store(tmp_path, create=True)
    first.lock()
    with Store(tmp_path) as second, pytest.raises(IndexLockedError, match=str(os.getpid())):
        second.lock()
    first.close()
    with Store(tmp_path) as third:
        third.lock()


def test_a_read_only_mount_opens_for_reading_and_refuses_writes_clearly(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    with read_only(index_dir):
        with Store(index_dir) as store:
            assert store.read_only and store.counts().photos == 4
            with pytest.raises(StoreError, match="read-only"):
                store.commit_batch([random_photo("late", 9)])
        with pytest.raises(StoreError, match="read-only"):
            Store(index_dir, create=True)
