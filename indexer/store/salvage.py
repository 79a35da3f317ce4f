"""Salvaging a damaged index database: every readable row into a fresh file.

``objsearch doctor`` calls this when the database cannot be opened or fails SQLite's
structural check. Rows are read table by table around damaged pages (a damaged page is
skipped by seeking past it), the damaged file is kept beside the new one, and what salvage
cannot vouch for (photos whose regions were partly lost, or every region when the record
of the embedding model is lost) is dropped so that the next ``index`` run embeds it again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

from .database import Store
from .schema import DB_NAME, SCHEMA_VERSION

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
