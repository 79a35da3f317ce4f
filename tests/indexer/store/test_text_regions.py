"""Text lines in the store: written with their photo, searchable by trigram, never vectors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from indexer.store import (
    DB_NAME,
    KIND_IMAGE,
    NewPhoto,
    NewRegion,
    NewText,
    PhotoMove,
    PhotoText,
    Store,
)
from indexer.store.doctor import check, repair


def _photo(path: str, texts: list[NewText] | None, dim: int = 4) -> NewPhoto:
    vec = np.ones(dim, np.float32) / 2
    return NewPhoto(
        path=path,
        size=1,
        mtime_ns=1,
        width=100,
        height=80,
        content_hash=path[-8:].rjust(8, "0"),
        caption="",
        regions=[NewRegion(KIND_IMAGE, (0, 0, 100, 80), vec)],
        texts=texts or [],
        text_engine=None if texts is None else "test-engine",
    )


def _trigram(store: Store, word: str) -> list[int]:
    with store.engine.connect() as conn:
        return [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT rowid FROM text_search WHERE text_search MATCH ?", (f'"{word}"',)
            )
        ]


def test_text_lines_are_stored_folded_and_leave_vectors_alone(tmp_path: Path) -> None:
    with Store(tmp_path / "i", create=True) as store:
        store.set_meta(embed_dim=4)
        store.commit_batch(
            [
                _photo("/p/a.jpg", [NewText((1, 2, 30, 12), "Crème BRÛLÉE", 0.91)]),
                _photo("/p/b.jpg", []),  # read, no text
                _photo("/p/c.jpg", None),  # not read
            ]
        )
        counts = store.counts()
        assert (counts.texts, counts.read, counts.regions) == (1, 2, 3)
        assert len(_trigram(store, "brul")) == 1 and len(_trigram(store, "creme")) == 1
        assert _trigram(store, "BRÛL") == []  # the table holds the folded copy only
        index, _ = store.load_vectors()
        assert index.ntotal == 3  # one whole-photo vector each, no text line
        assert [u.path for u in store.unread_photos(["/p/a.jpg", "/p/b.jpg", "/p/c.jpg"])] == [
            "/p/c.jpg"
        ]
        health = check(store)
        assert health.consistent and (health.texts, health.read) == (1, 2), health.problems


def test_reading_again_replaces_and_moves_keep_and_deletes_remove(tmp_path: Path) -> None:
    with Store(tmp_path / "i", create=True) as store:
        store.commit_batch([_photo("/p/a.jpg", [NewText((0, 0, 9, 9), "OLD SIGN", 0.8)])])
        (photo_id,) = store.texts_of_photos([1]).keys()
        store.commit_batch(
            [], texts=[PhotoText(photo_id, [NewText((0, 0, 9, 9), "NEW SIGN", 0.9)], "e2")]
        )
        assert [t.text for t in store.texts_of_photos([photo_id])[photo_id]] == ["NEW SIGN"]
        assert _trigram(store, "old") == [] and len(_trigram(store, "new")) == 1
        store.commit_batch([], moves=[PhotoMove(photo_id, "/q/a.jpg", 1, 1)])
        assert len(store.texts_of_photos([photo_id])[photo_id]) == 1
        store.commit_batch([], remove_photo_ids=[photo_id])
        assert store.texts_of_photos([photo_id]) == {}
        assert _trigram(store, "sign") == []
        assert store.counts().read == 0


def test_doctor_rebuilds_text_search_and_drops_orphans(tmp_path: Path) -> None:
    index_dir = tmp_path / "i"
    with Store(index_dir, create=True) as store:
        store.set_meta(embed_dim=4)
        store.commit_batch([_photo("/p/a.jpg", [NewText((0, 0, 9, 9), "BAKERY", 0.8)])])
        store.commit_batch([_photo("/p/b.jpg", [NewText((0, 0, 9, 9), "DINER", 0.8)])])
    with sqlite3.connect(index_dir / DB_NAME) as conn:  # a hand edit, a bug, a lost page
        conn.execute("DELETE FROM text_search")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DELETE FROM photos WHERE path = '/p/b.jpg'")
        conn.execute("DELETE FROM regions WHERE photo_id NOT IN (SELECT id FROM photos)")
    with Store(index_dir) as store:
        health = check(store)
        assert not health.consistent
        assert any("text search" in p for p in health.problems)
        assert any("belong to no photo" in p for p in health.problems)
    actions = repair(str(index_dir))
    assert any("text search" in a for a in actions) and any("text lines" in a for a in actions)
    with Store(index_dir) as store:
        assert check(store).consistent
        assert len(_trigram(store, "bake")) == 1 and _trigram(store, "dine") == []
