"""Schema upgrades: an index written by schema 1 migrates in place, atomically, with a backup."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import StoreError
from indexer.indexing import failures
from indexer.store import DB_NAME, Store, migrations
from indexer.store.schema import SCHEMA_VERSION
from tests.fixtures import FIXTURES, Models, make_indexer
from tests.fixtures.exif_photos import write_photo

SCHEMA1 = FIXTURES / "index-schema1"


def old_index(tmp_path: Path) -> Path:
    index_dir = tmp_path / "old-index"
    index_dir.mkdir()
    shutil.copy(SCHEMA1 / DB_NAME, index_dir / DB_NAME)
    return index_dir


def columns(db: Path, table: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def schema_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )


def test_schema1_index_upgrades_in_place_keeping_every_region(tmp_path: Path) -> None:
    index_dir = old_index(tmp_path)
    expected = json.loads((SCHEMA1 / "regions.json").read_text())["regions"]
    with Store(index_dir) as store:
        assert int(store.get_meta("schema_version")) == SCHEMA_VERSION == 5
        stored = [
            [os.path.basename(p.path), r.kind, [round(v, 2) for v in r.box], r.label]
            for p, regions in store.iter_photos()
            for r in regions
        ]
        with store.session() as s:
            conn = s.connection()
            missing = conn.exec_driver_sql(
                "SELECT count(*) FROM photos WHERE date_source IS NULL"
            ).scalar()
            names = conn.exec_driver_sql(
                "SELECT rowid FROM photo_text WHERE photo_text MATCH '\"photo_00\"'"
            ).all()
            cats = conn.exec_driver_sql(
                "SELECT count(*) FROM photo_text WHERE photo_text MATCH 'cat'"
            ).scalar()
    assert sorted(map(json.dumps, stored)) == sorted(map(json.dumps, expected))
    assert missing == 4, "metadata is unknown until the next index run reads the files"
    assert len(names) == 1
    assert cats == len({row[0] for row in expected if row[3] == "cat"})
    assert {"taken_at", "date_source", "camera", "gps_lat", "gps_lon"} <= columns(
        index_dir / DB_NAME, "photos"
    )
    backup = index_dir / f"{DB_NAME}.schema1.bak"
    assert backup.is_file() and schema_version(backup) == 1
    assert "taken_at" not in columns(backup, "photos")
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT count(*) FROM regions").fetchone()[0] == len(expected)


def test_failed_upgrade_leaves_schema1_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = old_index(tmp_path)
    real_step = migrations.STEPS[1]

    def step_then_crash(session) -> None:
        real_step(session)  # every change of the step is made ...
        raise OSError("power cut")  # ... and then the process dies before the commit

    monkeypatch.setitem(migrations.STEPS, 1, step_then_crash)
    with pytest.raises((StoreError, OSError)):
        Store(index_dir)
    db = index_dir / DB_NAME
    assert schema_version(db) == 1
    assert "taken_at" not in columns(db, "photos")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM regions").fetchone()[0] == 12
    monkeypatch.setitem(migrations.STEPS, 1, real_step)
    with Store(index_dir) as store:  # the next open upgrades normally
        assert int(store.get_meta("schema_version")) == SCHEMA_VERSION
        assert store.counts().regions == 12


def test_schema2_index_gains_text_tables_keeping_every_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = old_index(tmp_path)
    db = index_dir / DB_NAME
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 2)
    assert migrations.upgrade(str(db), 1) == 2  # the fixture as schema 2 wrote it
    monkeypatch.undo()
    assert schema_version(db) == 2
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT id, photo_id, kind, x1, label FROM regions").fetchall()
        assert not conn.execute(
            "SELECT name FROM sqlite_master WHERE name = 'text_regions'"
        ).fetchall()
    with Store(index_dir) as store:
        counts = store.counts()
        with store.session() as s:
            conn = s.connection()
            after = conn.exec_driver_sql("SELECT id, photo_id, kind, x1, label FROM regions").all()
            # The trigram table is live: a line added now is found inside its words.
            conn.exec_driver_sql(
                "INSERT INTO text_regions (photo_id, x1, y1, x2, y2, text, folded, confidence) "
                "SELECT id, 0, 0, 5, 5, 'SINCE2019', 'since2019', 0.9 FROM photos LIMIT 1"
            )
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM text_search WHERE text_search MATCH '\"e201\"'"
            ).scalar()
            words = conn.exec_driver_sql(
                "SELECT count(*) FROM photo_words WHERE photo_words MATCH 'since2019'"
            ).scalar()
    assert schema_version(db) == SCHEMA_VERSION == 5
    assert [tuple(r) for r in after] == before
    assert (counts.texts, counts.read, counts.regions) == (0, 0, len(before))
    assert found == 1 and words == 1
    backup = index_dir / f"{DB_NAME}.schema2.bak"
    assert backup.is_file() and schema_version(backup) == 2


class _NoModel:
    """Stands in for a model that must not run."""

    def __getattr__(self, name: str):
        raise AssertionError(f"a model was used ({name}) where only metadata was needed")


def test_photos_from_before_the_upgrade_get_metadata_without_a_model_run(
    tmp_path: Path, models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    write_photo(
        folder / "a.jpg",
        taken="2022:08:01 07:00:00",
        make="Canon",
        model="Canon EOS R5",
        gps=(1.5, 2.5),
    )
    write_photo(folder / "b.jpg", seed=1)
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([folder])
    with Store(index_dir) as store, store.session() as s, s.begin():
        # What an upgraded schema-1 index holds: photos with unknown metadata.
        s.connection().exec_driver_sql(
            "UPDATE photos SET taken_at = NULL, date_source = NULL, camera = NULL, "
            "gps_lat = NULL, gps_lon = NULL"
        )
    indexer = make_indexer(models, index_dir)
    indexer.embedder, indexer.detector = _NoModel(), _NoModel()  # type: ignore[assignment]
    decoded: list[str] = []
    real_read = failures.read_photo
    monkeypatch.setattr(
        failures, "read_photo", lambda path, **kw: decoded.append(path) or real_read(path, **kw)
    )
    stats = indexer.index([folder])
    assert decoded == [], "only the EXIF headers are read, no pixels decoded"
    assert stats.indexed == 0 and stats.unchanged == 2 and stats.failures == 0
    with Store(index_dir) as store:
        photos = {os.path.basename(p.path): p for p, _ in store.iter_photos()}
    a, b = photos["a.jpg"], photos["b.jpg"]
    assert (a.taken_at, a.date_source, a.camera) == (
        "2022-08-01T07:00:00",
        "exif-original",
        "Canon EOS R5",
    )
    assert (a.gps_lat, a.gps_lon) == pytest.approx((1.5, 2.5), abs=1e-5)
    assert b.date_source == "file-mtime" and b.taken_at
    again = make_indexer(models, index_dir).index([folder])
    assert again.unchanged == 2 and again.indexed == 0


SCHEMA3 = FIXTURES / "index-schema3"


def schema3_index(tmp_path: Path) -> Path:
    """A copy of the schema-3 fixture: database, FAISS main segment, tombstones, delta."""
    index_dir = tmp_path / "schema3-index"
    shutil.copytree(SCHEMA3, index_dir)
    (index_dir / "expected.json").unlink()
    return index_dir


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_schema3_index_upgrades_keeping_its_faiss_file_tombstones_and_delta(
    tmp_path: Path,
) -> None:
    index_dir = schema3_index(tmp_path)
    expected = json.loads((SCHEMA3 / "expected.json").read_text())
    assert schema_version(index_dir / DB_NAME) == 3
    with Store(index_dir) as store:
        status = store.vector_status()
        live, from_file = store.load_vectors()
        ghosts = np.array(expected["deleted_vectors"], np.float32)
        _, hits = live.search(ghosts, k=live.ntotal)
    assert schema_version(index_dir / DB_NAME) == SCHEMA_VERSION == 5
    assert from_file, "the FAISS file written before the upgrade is still the main segment"
    assert status.tombstones == len(expected["tombstones"]) and status.main is not None
    assert status.delta == len(expected["delta"])
    assert sorted(live.tombstones.tolist()) == expected["tombstones"]
    assert sorted(live.ids().tolist()) == expected["live"]
    assert not set(hits.ravel().tolist()) & set(expected["tombstones"])
    assert set(hits.ravel().tolist()) == set(expected["live"])
    assert (index_dir / f"{DB_NAME}.schema3.bak").is_file()


def test_schema3_index_without_a_tombstones_table_gains_one_and_records_deletions(
    tmp_path: Path,
) -> None:
    """Schema-3 stores made the table on their first deletion; the upgrade makes it for all."""
    index_dir = schema3_index(tmp_path)
    expected = json.loads((SCHEMA3 / "expected.json").read_text())
    with sqlite3.connect(index_dir / DB_NAME) as conn:
        conn.execute("DROP TABLE tombstones")  # as a store with no deletion recorded yet
    assert "tombstones" not in tables(index_dir / DB_NAME)
    with Store(index_dir) as store:
        assert "tombstones" in tables(index_dir / DB_NAME)
        assert store.vector_status().tombstones == 0
        live, from_file = store.load_vectors()
        # The lost deletions are found by comparing id sets, so they still never return.
        assert from_file and sorted(live.tombstones.tolist()) == expected["tombstones"]
        gone = store.photo_states()["/photos/p0.jpg"].id
        removed = store.commit_batch([], remove_photo_ids=[gone]).removed_ids
        assert store.vector_status().tombstones == len(removed) == 2
        live, _ = store.load_vectors()
    assert not set(removed.tolist()) & set(live.ids().tolist())


SCHEMA4 = FIXTURES / "index-schema4"


def test_schema4_index_upgrades_to_float16_vectors_that_agree(tmp_path: Path) -> None:
    """4 -> 5: object vectors are rewritten as float16 (half the bytes) within 0.9999."""
    index_dir = tmp_path / "schema4-index"
    shutil.copytree(SCHEMA4, index_dir)
    (index_dir / "expected.json").unlink()
    expected = json.loads((SCHEMA4 / "expected.json").read_text())["vectors"]
    dim = len(next(iter(expected.values())))
    assert schema_version(index_dir / DB_NAME) == 4
    with Store(index_dir) as store:
        live, from_file = store.load_vectors()
        stored = {str(i): store.region_vector(int(i)) for i in expected}
        scores, hits = live.search(np.array(list(expected.values()), np.float32), 1)
        assert not store.vector_status().pending or live.delta.ntotal == 2
    assert schema_version(index_dir / DB_NAME) == SCHEMA_VERSION == 5
    assert from_file, "the FAISS file written before the upgrade is still the main segment"
    with sqlite3.connect(index_dir / DB_NAME) as conn:
        widths = set(conn.execute("SELECT kind, length(vector) FROM regions").fetchall())
    assert widths == {("object", 2 * dim), ("image", 4 * dim)}  # objects: half the bytes
    for key, vector in expected.items():
        want = np.array(vector, np.float32)
        got = stored[key]
        assert got is not None and got.dtype == np.float32
        assert float(got @ want) / float(np.linalg.norm(got) * np.linalg.norm(want)) >= 0.9999
    assert hits[:, 0].tolist() == [int(k) for k in expected]  # each vector finds its region
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-3)
    assert (index_dir / f"{DB_NAME}.schema4.bak").is_file()
