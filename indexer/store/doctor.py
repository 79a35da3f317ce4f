"""Consistency checks (``objsearch status``) and repairs (``objsearch doctor``).

SQLite is the source of truth and FAISS is derived, so most repairs are a rebuild. The
checks look for what a crash, a full disk or a hand edit could leave behind: regions whose
photo is gone, photos missing their whole-photo region, and vectors of the wrong size (all
of which make an index inconsistent), and a stale or unreadable FAISS file (which does not:
it is rebuilt on next use, and reported apart). A database file that is damaged (it cannot be opened, or
SQLite's structural check fails) is salvaged table by table into a fresh file, reading
around damaged pages; the damaged one is kept beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Connection, delete, func, select

from ..errors import CorruptIndexError, StoreError, first_line
from ..settings import expand_path
from .database import Store, remove_temp_files
from .lock import writer_lock
from .schema import DB_NAME, KIND_IMAGE, SCHEMA_VERSION, Photo, Region, TextRead, TextRegion
from .vectors import VectorIndex

VECTORS_FRESH = "fresh"
VECTORS_STALE = "stale (rebuilt on next use)"


@dataclass
class Health:
    """What ``status`` reports.

    ``consistent`` speaks of SQLite, the source of truth: no orphan regions, every photo
    with its whole-photo region, vectors of the right size. The FAISS file is derived and
    reported apart in ``vectors_file``: ``"fresh"``, or ``"stale (rebuilt on next use)"``
    when it is missing, damaged or older than SQLite (``vectors_detail`` says which). The
    next search or index run rebuilds it and writes it back; ``status`` itself only reads.
    """

    index: str
    photos: int
    objects: int
    images: int
    vectors: int
    failures: int
    consistent: bool
    texts: int
    """Text lines read in photos (``--ocr``); they have no vector, so FAISS never holds them."""
    read: int
    """Photos whose text has been read."""
    generation: int
    clip_model: str | None
    model_family: str | None
    embed_dim: int | None
    detector: str | None
    faiss_kind: str | None
    vectors_file: str = VECTORS_FRESH
    vectors_detail: str | None = None
    vectors_pending: int = 0
    """Regions added or deleted since the FAISS main segment was built (searched through
    the delta and tombstones; ``doctor`` or a larger index run folds them in)."""
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


def _orphan_texts(store: Store) -> int:
    """Text lines or read marks whose photo is gone."""
    with store.session() as s:
        photos = select(Photo.id)
        lines = s.scalar(select(func.count()).where(TextRegion.photo_id.not_in(photos)))
        marks = s.scalar(select(func.count()).where(TextRead.photo_id.not_in(photos)))
        return int(lines or 0) + int(marks or 0)


def _text_search_out_of_step(store: Store) -> bool:
    """Whether the text search tables disagree with the text lines they index."""
    with store.engine.connect() as conn:
        lines = conn.exec_driver_sql("SELECT count(*) FROM text_regions").scalar()
        indexed = conn.exec_driver_sql("SELECT count(*) FROM text_search").scalar()
        photos = conn.exec_driver_sql("SELECT count(DISTINCT photo_id) FROM text_regions").scalar()
        worded = conn.exec_driver_sql("SELECT count(*) FROM photo_words").scalar()
    return (lines, photos) != (indexed, worded)


def _rebuild_text_search(conn: Connection) -> None:
    """Refill both text search tables from ``text_regions``."""
    run = conn.exec_driver_sql
    run("DELETE FROM text_search")
    run("INSERT INTO text_search (rowid, folded) SELECT id, folded FROM text_regions")
    run("DELETE FROM photo_words")
    run(
        "INSERT INTO photo_words (rowid, words) SELECT photo_id, ' ' || group_concat(text, ' ') "
        "FROM text_regions GROUP BY photo_id"
    )


def _vectors_file(store: Store, regions: int) -> tuple[int, str | None, int]:
    """(searchable vectors, why the FAISS file is stale or None, pending changes).

    A usable main segment is fresh: what it lacks (the delta) and what it holds in vain
    (tombstones) come from SQLite, and count as pending.
    """
    if not os.path.exists(store.faiss_path):
        return 0, "the FAISS file is missing", 0
    try:
        held = VectorIndex.load(store.faiss_path, mapped=True).ntotal
    except (RuntimeError, OSError) as exc:
        return 0, f"the FAISS file is unreadable ({first_line(exc)[:120]})", 0
    status = store.vector_status()
    if status.main is None:
        if held != regions:
            return held, f"FAISS holds {held} vectors but SQLite has {regions} regions", 0
        return held, "the FAISS file was written for an older generation of the index", 0
    if held != status.main.count:
        return held, f"FAISS holds {held} vectors but its record says {status.main.count}", 0
    live = held - status.tombstones + status.delta
    if live != regions:  # deletions without tombstones: the next load finds them by id
        return held, f"FAISS holds {live} live vectors but SQLite has {regions} regions", 0
    return live, None, status.pending


def check(store: Store, *, max_failures: int = 1000) -> Health:
    """Inspect an open store without changing it."""
    meta = store.meta()
    counts = store.counts()
    dim = int(meta.get("embed_dim") or 0)
    problems: list[str] = []
    vectors, detail, pending = _vectors_file(store, counts.regions)
    orphans = _orphan_regions(store)
    if orphans:
        problems.append(f"{len(orphans)} regions belong to no photo")
    missing_image = _photos_without_image(store)
    if missing_image:
        problems.append(f"{len(missing_image)} photos have no whole-photo region")
    bad = _bad_vectors(store, dim)
    if bad:
        problems.append(f"{len(bad)} regions have vectors of the wrong size")
    orphan_texts = _orphan_texts(store)
    if orphan_texts:
        problems.append(f"{orphan_texts} text lines or read marks belong to no photo")
    if _text_search_out_of_step(store):
        problems.append("the text search tables are out of step with the text lines")
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
        texts=counts.texts,
        read=counts.read,
        generation=int(meta.get("generation") or 0),
        clip_model=meta.get("clip_model"),
        model_family=meta.get("model_family") or ("clip" if meta.get("clip_model") else None),
        embed_dim=dim or None,
        detector=meta.get("detector"),
        faiss_kind=meta.get("faiss_kind"),
        vectors_file=VECTORS_STALE if detail else VECTORS_FRESH,
        vectors_detail=detail,
        vectors_pending=pending,
        problems=problems,
        failed=failed,
    )


_SALVAGE_TABLES = ("meta", "photos", "regions", "failures", "text_regions", "text_reads")
_MODEL_KEYS = ("clip_model", "embed_dim", "clip_probe")
# What goes with a photo, children first.
_PHOTO_TABLES = (
    ("regions", "photo_id"),
    ("text_regions", "photo_id"),
    ("text_reads", "photo_id"),
    ("photos", "id"),
)


def _next_readable(src: sqlite3.Connection, table: str, after: int) -> int | None:
    """The rowid to go on reading after (rows up to it are lost), or None if none can be.

    Either the next row itself is damaged (its page lists it but its data is unreadable):
    skip that row. Or the page holding the next rows is: a seek to a rowid beyond that page
    goes through the intact interior pages straight to later leaves, and doubling then
    halving the seek target finds the end of the damage in a few dozen seeks.
    """

    def seek(n: int) -> tuple[bool, int | None]:
        try:
            row = src.execute(
                f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1", (n,)
            ).fetchone()
        except sqlite3.DatabaseError:
            return False, None
        return True, (row[0] if row else None)

    listed, first = seek(after)
    if listed:
        return first
    step = 1
    while not seek(after + step)[0]:
        step *= 2
        if after + step >= 2**62:
            return None
    lo, hi = after + step // 2, after + step  # seeks past lo fail (or lo == after), past hi work
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if seek(mid)[0] else (mid, hi)
    return hi


def _copy_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str
) -> tuple[int, int, list[tuple[int, int]]]:
    """Copy the readable rows of ``table``: (copied, rejected, gaps of lost rowids (a, b])."""
    wanted = [r[1] for r in dst.execute(f"PRAGMA table_info({table})")]
    with contextlib.suppress(sqlite3.DatabaseError):  # an older schema lacks newer columns
        present = {r[1] for r in src.execute(f"PRAGMA table_info({table})")}
        wanted = [c for c in wanted if c in present] or wanted
    cols = ", ".join(wanted)
    marks = ", ".join("?" for _ in cols.split(", "))
    insert = f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})"
    copied = rejected = 0
    gaps: list[tuple[int, int]] = []
    last = 0  # rowids of these tables start at 1
    while True:
        try:
            rows = src.execute(
                f"SELECT rowid, {cols} FROM {table} WHERE rowid > ? ORDER BY rowid", (last,)
            )
            for row in rows:
                last = row[0]
                try:
                    dst.execute(insert, row[1:])
                    copied += 1
                except sqlite3.DatabaseError:  # a damaged row that breaks a constraint
                    rejected += 1
            return copied, rejected, gaps
        except sqlite3.DatabaseError:
            resume = _next_readable(src, table, last)
            gaps.append((last, resume if resume is not None else 2**62))
            if resume is None:
                return copied, rejected, gaps
            last = resume


def _damaged_name(db: str) -> str:
    base = f"{db}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while os.path.exists(name):
        name, n = f"{base}-{n}", n + 1
    return name


def salvage_database(index_dir: str) -> list[str]:
    """Copy every readable row of a damaged database into a fresh one; keep the old file.

    Photos whose regions were partly lost are dropped so that the next ``index`` run embeds
    them again (a photo with only some of its object regions would look complete), and if
    the record of the embedding model is lost, so are all regions: their model can no longer be
    checked against the next run's.
    """
    db = os.path.join(index_dir, DB_NAME)
    broken = _damaged_name(db)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            shutil.move(db + suffix, broken + suffix)
    actions = [f"moved the damaged database to {os.path.basename(broken)}"]
    fresh = Store(index_dir, create=True)  # empty schema of this version
    fresh.close()
    src = sqlite3.connect(f"{Path(broken).as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(db)
    try:
        old_generation = 0
        with contextlib.suppress(sqlite3.DatabaseError, ValueError, TypeError):
            row = src.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            old_generation = int(row[0]) if row else 0
        region_gaps: list[tuple[int, int]] = []
        for table in _SALVAGE_TABLES:
            try:
                copied, rejected, gaps = _copy_table(src, dst, table)
            except sqlite3.DatabaseError as exc:
                actions.append(f"table {table}: unreadable ({exc})")
                continue
            if table == "regions":
                region_gaps = gaps
            note = [f"{rejected} damaged rows"] if rejected else []
            note += [f"{len(gaps)} unreadable stretch{'es' * (len(gaps) != 1)}"] if gaps else []
            actions.append(
                f"table {table}: recovered {copied} rows"
                + (f" ({', '.join(note)})" if note else "")
            )
        # AUTOINCREMENT counters: ids of lost rows must never be handed out again.
        with contextlib.suppress(sqlite3.DatabaseError):
            for name, seq in src.execute("SELECT name, seq FROM sqlite_sequence").fetchall():
                dst.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, name)
                )
                if not dst.execute(
                    "SELECT 1 FROM sqlite_sequence WHERE name = ?", (name,)
                ).fetchone():
                    dst.execute(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq)
                    )
        actions += _drop_incomplete(dst, region_gaps)
        generation = old_generation + 1 if old_generation else int(time.time())
        dst.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', ?)", (str(generation),)
        )
        # The rows now sit in this version's schema, whatever version the old file had.
        dst.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        dst.commit()
    finally:
        src.close()
        dst.close()
    return actions


def _drop_incomplete(dst: sqlite3.Connection, region_gaps: list[tuple[int, int]]) -> list[str]:
    """Remove what salvage cannot vouch for (see :func:`salvage_database`)."""
    regions = dst.execute("SELECT count(*) FROM regions").fetchone()[0]
    keys = {r[0] for r in dst.execute("SELECT key FROM meta")}
    if regions and not set(_MODEL_KEYS) <= keys:
        photos = dst.execute("SELECT count(*) FROM photos").fetchone()[0]
        for table, _ in _PHOTO_TABLES:
            dst.execute(f"DELETE FROM {table}")
        for key in (*_MODEL_KEYS, "model_family"):
            dst.execute("DELETE FROM meta WHERE key = ?", (key,))
        return [
            f"the record of the embedding model was lost: dropped all {photos} photos "
            "(the next 'objsearch index' run indexes them again)"
        ]
    # A photo's regions are stored with consecutive ids, so only the photos at the two
    # edges of a lost stretch can have lost some regions but not all of them.
    partial: set[int] = set()
    for a, b in region_gaps:
        for sql, bound in (
            ("SELECT photo_id FROM regions WHERE id <= ? ORDER BY id DESC LIMIT 1", a),
            ("SELECT photo_id FROM regions WHERE id > ? ORDER BY id LIMIT 1", b),
        ):
            row = dst.execute(sql, (bound,)).fetchone()
            if row:
                partial.add(int(row[0]))
    if not partial:
        return []
    marks = ", ".join("?" for _ in partial)
    for table, column in _PHOTO_TABLES:
        dst.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", tuple(partial))
    return [
        f"dropped {len(partial)} photos whose regions were partly unreadable "
        "(the next 'objsearch index' run indexes them again)"
    ]


def _open_intact(index_dir: str) -> Store | None:
    """The store if its database passes SQLite's structural check, else None (damaged)."""
    try:
        store = Store(index_dir)
    except CorruptIndexError:
        return None
    try:
        with store.engine.connect() as conn:
            result = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")]
    except CorruptIndexError:
        store.close()
        return None
    except StoreError:
        store.close()
        raise
    if result != ["ok"]:
        store.close()
        return None
    return store


def repair(index_dir: str) -> list[str]:
    """Fix what can be fixed and say what was done (an empty list means nothing was needed)."""
    actions: list[str] = []
    index_dir = expand_path(index_dir)
    if not os.path.exists(os.path.join(index_dir, DB_NAME)):
        raise StoreError(f"No objsearch index at {index_dir}.")
    with writer_lock(index_dir):
        leftovers = remove_temp_files(index_dir)
        if leftovers:
            actions.append(f"removed {leftovers} temporary FAISS files left by a killed run")
        store = _open_intact(index_dir)
        if store is None:
            actions += salvage_database(index_dir)
            store = Store(index_dir)
        with store:
            actions += _repair_open(store)
    return actions


def _repair_open(store: Store) -> list[str]:
    """Drop incomplete rows and rebuild FAISS in an openable, structurally sound store."""
    actions: list[str] = []
    dim = int(store.get_meta("embed_dim") or 0)
    orphans = _orphan_regions(store)
    bad = _bad_vectors(store, dim)
    broken_photos = set(_photos_without_image(store))
    orphan_texts = _orphan_texts(store)
    with store.session() as s, s.begin():
        if bad:
            broken_photos.update(s.scalars(select(Region.photo_id).where(Region.id.in_(bad))))
        if orphans:
            s.execute(delete(Region).where(Region.id.in_(orphans)))
        if broken_photos:
            s.execute(delete(Region).where(Region.photo_id.in_(broken_photos)))
            s.execute(delete(TextRegion).where(TextRegion.photo_id.in_(broken_photos)))
            s.execute(delete(TextRead).where(TextRead.photo_id.in_(broken_photos)))
            s.execute(delete(Photo).where(Photo.id.in_(broken_photos)))
        if orphan_texts:
            photos = select(Photo.id)
            s.execute(delete(TextRegion).where(TextRegion.photo_id.not_in(photos)))
            s.execute(delete(TextRead).where(TextRead.photo_id.not_in(photos)))
    if orphan_texts:
        actions.append(f"dropped {orphan_texts} text lines or read marks that belonged to no photo")
    if _text_search_out_of_step(store):
        with store.session() as s, s.begin():
            _rebuild_text_search(s.connection())
        actions.append("rebuilt the text search tables from the text lines")
    if orphans:
        actions.append(f"dropped {len(orphans)} regions that belonged to no photo")
    if broken_photos:
        actions.append(
            f"dropped {len(broken_photos)} incomplete photos (the next 'objsearch index' run indexes them again)"
        )
    if orphans or broken_photos:
        store.set_meta(generation=store.generation + 1)
    cleared = store.clear_stale_failures()
    if cleared:
        actions.append(
            f"cleared {cleared} failures of files that no longer exist or are now indexed"
        )
    health = check(store)
    if (
        not health.consistent
        or health.vectors_file != VECTORS_FRESH
        or health.vectors_pending
        or actions
    ):
        index = store.compact_vectors()
        actions.append(
            f"rebuilt the FAISS index from SQLite ({index.ntotal} vectors, {index.index_type})"
        )
    return actions
