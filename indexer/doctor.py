"""Consistency checks (``objsearch status``) and repairs (``objsearch doctor``).

SQLite is the source of truth and FAISS is derived, so most repairs are a rebuild. The
checks look for what a crash, a full disk or a hand edit could leave behind: a stale or
unreadable FAISS file, regions whose photo is gone, photos missing their whole-photo region,
and vectors of the wrong size. A database file too damaged to open is salvaged table by
table into a fresh file; the damaged one is kept beside it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field

from sqlalchemy import delete, func, select

from .errors import StoreError
from .store import DB_NAME, KIND_IMAGE, Photo, Region, Store
from .vectors import VectorIndex


@dataclass
class Health:
    """What ``status`` reports; ``consistent`` is True when SQLite and FAISS agree."""

    index: str
    photos: int
    objects: int
    images: int
    vectors: int
    failures: int
    consistent: bool
    generation: int
    clip_model: str | None
    embed_dim: int | None
    detector: str | None
    faiss_kind: str | None
    problems: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _bad_vectors(store: Store, dim: int) -> list[int]:
    if not dim:
        return []
    with store.session() as s:
        rows = s.execute(select(Region.id).where(func.length(Region.vector) != dim * 4))
        return [r[0] for r in rows]


def _photos_without_image(store: Store) -> list[int]:
    with store.session() as s:
        has_image = select(Region.photo_id).where(Region.kind == KIND_IMAGE)
        return list(s.scalars(select(Photo.id).where(Photo.id.not_in(has_image))))


def _orphan_regions(store: Store) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(Region.id).where(Region.photo_id.not_in(select(Photo.id)))))


def check(store: Store, *, max_failures: int = 1000) -> Health:
    """Inspect an open store without changing it."""
    meta = store.meta()
    counts = store.counts()
    dim = int(meta.get("embed_dim") or 0)
    problems: list[str] = []
    vectors = 0
    if not os.path.exists(store.faiss_path):
        if counts.regions:
            problems.append("the FAISS file is missing")
    else:
        try:
            index = VectorIndex.load(store.faiss_path)
            vectors = index.ntotal
            if vectors != counts.regions:
                problems.append(
                    f"FAISS holds {vectors} vectors but SQLite has {counts.regions} regions"
                )
            elif not store.faiss_is_fresh():
                problems.append("the FAISS file was written for an older generation of the index")
        except (RuntimeError, OSError) as exc:
            problems.append(f"the FAISS file is unreadable ({str(exc).splitlines()[0][:120]})")
    orphans = _orphan_regions(store)
    if orphans:
        problems.append(f"{len(orphans)} regions belong to no photo")
    missing_image = _photos_without_image(store)
    if missing_image:
        problems.append(f"{len(missing_image)} photos have no whole-photo region")
    bad = _bad_vectors(store, dim)
    if bad:
        problems.append(f"{len(bad)} regions have vectors of the wrong size")
    failed = [
        {"path": f.path, "stage": f.stage, "reason": f.reason}
        for f in store.failures()[:max_failures]
    ]
    return Health(
        index=store.dir,
        photos=counts.photos,
        objects=counts.objects,
        images=counts.images,
        vectors=vectors,
        failures=counts.failures,
        consistent=not problems,
        generation=int(meta.get("generation") or 0),
        clip_model=meta.get("clip_model"),
        embed_dim=dim or None,
        detector=meta.get("detector"),
        faiss_kind=meta.get("faiss_kind"),
        problems=problems,
        failed=failed,
    )


def salvage_database(index_dir: str) -> list[str]:
    """Copy every readable row of a damaged database into a fresh one; keep the old file."""
    db = os.path.join(index_dir, DB_NAME)
    broken = f"{db}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            shutil.move(db + suffix, broken + suffix)
    actions = [f"moved the damaged database to {os.path.basename(broken)}"]
    fresh = Store(index_dir, create=True)  # empty schema of this version
    fresh.close()
    src = sqlite3.connect(f"file:{broken}?mode=ro", uri=True)
    dst = sqlite3.connect(db)
    try:
        for table in ("meta", "photos", "regions", "failures"):
            copied = lost = 0
            try:
                cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})")]
                rows = src.execute(f"SELECT {', '.join(cols)} FROM {table}")
                marks = ", ".join("?" for _ in cols)
                while True:
                    try:
                        row = rows.fetchone()
                    except sqlite3.DatabaseError:
                        lost += 1
                        break
                    if row is None:
                        break
                    try:
                        dst.execute(
                            f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                            row,
                        )
                        copied += 1
                    except sqlite3.DatabaseError:
                        lost += 1
            except sqlite3.DatabaseError as exc:
                actions.append(f"table {table}: unreadable ({exc})")
                continue
            actions.append(
                f"table {table}: recovered {copied} rows" + (f", {lost} unreadable" if lost else "")
            )
        dst.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', COALESCE((SELECT CAST(value AS INTEGER) + 1 FROM meta WHERE key = 'generation'), 1))"
        )
        dst.commit()
    finally:
        src.close()
        dst.close()
    return actions


def repair(index_dir: str) -> list[str]:
    """Fix what can be fixed and say what was done (an empty list means nothing was needed)."""
    actions: list[str] = []
    index_dir = os.path.abspath(index_dir)
    if not os.path.exists(os.path.join(index_dir, DB_NAME)):
        raise StoreError(f"No objsearch index at {index_dir}.")
    try:
        store = Store(index_dir)
    except StoreError as exc:
        if "corrupt" not in str(exc) and "unreadable" not in str(exc):
            raise
        actions += salvage_database(index_dir)
        store = Store(index_dir)
    with store:
        store.lock()
        dim = int(store.get_meta("embed_dim") or 0)
        orphans = _orphan_regions(store)
        bad = _bad_vectors(store, dim)
        broken_photos = set(_photos_without_image(store))
        with store.session() as s, s.begin():
            if bad:
                broken_photos.update(s.scalars(select(Region.photo_id).where(Region.id.in_(bad))))
            if orphans:
                s.execute(delete(Region).where(Region.id.in_(orphans)))
            if broken_photos:
                s.execute(delete(Region).where(Region.photo_id.in_(broken_photos)))
                s.execute(delete(Photo).where(Photo.id.in_(broken_photos)))
        if orphans:
            actions.append(f"dropped {len(orphans)} regions that belonged to no photo")
        if broken_photos:
            actions.append(
                f"dropped {len(broken_photos)} incomplete photos (the next 'objsearch index' run indexes them again)"
            )
        if orphans or broken_photos:
            store.set_meta(generation=store.generation + 1)
        health = check(store)
        if not health.consistent or actions:
            index = store.rebuild_vectors()
            store.save_vectors(index, store.generation)
            actions.append(
                f"rebuilt the FAISS index from SQLite ({index.ntotal} vectors, {index.kind})"
            )
    return actions
