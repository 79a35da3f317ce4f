"""The schema: what a new store holds, the triggers that keep search tables in step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexer.store import DB_NAME, Store
from indexer.store.schema import KIND_IMAGE, SCHEMA_VERSION, Photo, Region, TextRegion, _basename
from tests.fixtures.store_records import random_photo, random_store


def test_a_new_store_has_every_table_of_this_schema_version(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    with sqlite3.connect(tmp_path / "index" / DB_NAME) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"photos", "regions", "failures", "meta", "tombstones", "text_regions"} <= names
    assert {"text_reads", "photo_text", "text_search", "photo_words"} <= names
    assert {"photo_text_insert", "photo_text_label", "text_search_insert"} <= names


def test_photo_text_follows_inserts_moves_and_deletes(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index", photos=2)

    def match(query: str) -> int:
        with sqlite3.connect(index_dir / DB_NAME) as conn:
            sql = "SELECT count(*) FROM photo_text WHERE photo_text MATCH ?"
            return int(conn.execute(sql, (query,)).fetchone()[0])

    assert match('"p0"') == 1 and match("cat") == 2  # file names and detector labels
    with sqlite3.connect(index_dir / DB_NAME) as conn:
        conn.execute("UPDATE photos SET path = '/photos/renamed.jpg' WHERE path LIKE '%p0.jpg'")
        conn.execute("DELETE FROM regions WHERE photo_id = 2")
        conn.execute("DELETE FROM photos WHERE id = 2")
    assert match('"p0"') == 0 and match("renamed") == 1 and match("cat") == 1


def test_text_lines_are_found_inside_words_through_the_trigram_table(tmp_path: Path) -> None:
    with Store(tmp_path / "index", create=True) as store:
        store.commit_batch([random_photo("shop", 1)])
        with store.session() as s, s.begin():
            line = dict(x1=0, y1=0, x2=5, y2=5, text="BAKERY", folded="bakery", confidence=0.9)
            s.add(TextRegion(photo_id=1, **line))
        with store.engine.connect() as conn:
            hits = conn.exec_driver_sql(
                "SELECT rowid FROM text_search WHERE text_search MATCH '\"ake\"'"
            ).all()
    assert hits == [(1,)]


def test_region_boxes_as_results_show_them() -> None:
    whole = Region(kind=KIND_IMAGE, x1=0, y1=0, x2=10, y2=8, confidence=None)
    obj = Region(kind="object", x1=1.234, y1=2.345, x2=3.456, y2=4.567, confidence=0.912345)
    assert whole.shown_box is None and whole.shown_confidence is None
    assert obj.shown_box == (1.23, 2.35, 3.46, 4.57) and obj.shown_confidence == 0.9123
    photo = Photo(gps_lat=None, gps_lon=2.0)
    assert photo.gps is None


def test_basename_sql_takes_the_last_path_part() -> None:
    with sqlite3.connect(":memory:") as conn:
        sql = f"SELECT {_basename('?')}"
        assert conn.execute(sql.replace("?", "'/a/b/c.jpg'")).fetchone()[0] == "c.jpg"
        assert conn.execute(sql.replace("?", "'plain.jpg'")).fetchone()[0] == "plain.jpg"
