"""Salvage: every readable row of a damaged database copied into a fresh one, the old kept."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from indexer.store import DB_NAME, Store
from indexer.store.salvage import salvage_database
from indexer.store.schema import SCHEMA_VERSION
from tests.fixtures import FIXTURES
from tests.fixtures.store_records import random_photo, random_store


def test_salvage_copies_every_readable_row_and_keeps_the_old_file(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index")
    with Store(index_dir) as store:
        store.commit_batch([], remove_photo_ids=[store.photo_states()["/photos/p3.jpg"].id])
        before = (store.counts(), store.generation, store.photo_states())
    actions = salvage_database(str(index_dir))
    assert actions[0].startswith("moved the damaged database to objsearch.db.damaged-")
    assert "table regions: recovered 6 rows" in actions
    assert "table photos: recovered 3 rows" in actions
    kept = [n for n in os.listdir(index_dir) if n.startswith(f"{DB_NAME}.damaged-")]
    assert kept, "the damaged file stays beside the new one"
    with Store(index_dir) as store:
        assert store.counts() == before[0]
        assert store.photo_states() == before[2]
        assert store.generation == before[1] + 1  # readers see a new index
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        # Ids of regions lost or deleted before are never handed out again.
        added = store.commit_batch([random_photo("new", 9)]).added_ids
    assert int(added.min()) == 9


def test_lost_model_record_drops_every_photo_so_the_next_run_embeds_them_again(
    tmp_path: Path,
) -> None:
    index_dir = random_store(tmp_path / "index")
    with sqlite3.connect(index_dir / DB_NAME) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'clip_model'")
    actions = salvage_database(str(index_dir))
    assert actions[-1].startswith("the record of the embedding model was lost: dropped all 4")
    with Store(index_dir) as store:
        assert store.counts().photos == 0 and store.counts().regions == 0
        assert store.get_meta("embed_dim") is None


def test_an_older_schema_is_salvaged_into_this_one(tmp_path: Path) -> None:
    """A schema-1 file lacks later columns and tables: what it has is copied, nothing fails."""
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    shutil.copy(FIXTURES / "index-schema1" / DB_NAME, index_dir / DB_NAME)
    actions = salvage_database(str(index_dir))
    assert "table regions: recovered 12 rows" in actions
    assert "table text_regions: recovered 0 rows (1 unreadable stretch)" in actions
    with Store(index_dir) as store:
        assert store.counts().regions == 12 and store.counts().photos == 4
