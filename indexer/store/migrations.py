"""Schema migrations: one step per version, applied in order when an older index opens.

``STEPS[n]`` upgrades a version-``n`` database to ``n + 1``. Each step runs on a plain
``sqlite3`` connection inside one explicit ``BEGIN IMMEDIATE`` transaction that also records
the new version: SQLite's DDL is transactional, so a crash mid-upgrade leaves the database
at a whole version (the Python driver would otherwise commit DDL statements one by one).
Before the first step the database is copied, with SQLite's online backup, to
``objsearch.db.schema<N>.bak`` beside it: an index people cannot rebuild cheaply keeps a
way back.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

import numpy as np
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from ..errors import StoreError
from .schema import (
    KIND_IMAGE,
    SCHEMA_VERSION,
    SEARCH_DDL,
    TEXT_DDL,
    Base,
    TextRead,
    TextRegion,
    Tombstone,
    _basename,
)
from .vector_codec import encode_vector

MigrationStep = Callable[[sqlite3.Connection], None]


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Photo metadata columns (EXIF date, camera, GPS) and full-text search.

    Existing photos keep NULL metadata (``date_source IS NULL``): the next ``index`` run
    reads it from their files without running any model.
    """
    for column, sql_type in (
        ("taken_at", "VARCHAR(19)"),
        ("date_source", "VARCHAR(16)"),
        ("camera", "VARCHAR"),
        ("gps_lat", "FLOAT"),
        ("gps_lon", "FLOAT"),
    ):
        conn.execute(f"ALTER TABLE photos ADD COLUMN {column} {sql_type}")
    conn.execute("CREATE INDEX ix_photos_taken_at ON photos (taken_at)")
    conn.execute("CREATE INDEX ix_photos_gps_lat ON photos (gps_lat)")
    for statement in SEARCH_DDL:
        conn.execute(statement)
    fill_photo_text(conn)


def fill_photo_text(conn: sqlite3.Connection) -> None:
    """(Re)build the full-text rows of every photo from the photos and regions tables."""
    conn.execute("DELETE FROM photo_text")
    conn.execute(
        "INSERT INTO photo_text (rowid, caption, labels, name) SELECT p.id, p.caption, "
        "coalesce((SELECT group_concat(r.label, ' ') FROM regions r "
        "WHERE r.photo_id = p.id AND r.label IS NOT NULL), ''), "
        f"{_basename('p.path')} FROM photos p"
    )


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    """The text read in photos: text lines, which photos were read, their full-text tables.

    Nothing is read yet: the next ``index --ocr`` run reads every photo's text without
    running the other models again.
    """
    dialect = sqlite_dialect.dialect()
    for table in (
        Base.metadata.tables[TextRegion.__tablename__],
        Base.metadata.tables[TextRead.__tablename__],
    ):
        conn.execute(str(CreateTable(table).compile(dialect=dialect)))
        for index in table.indexes:
            conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
    for statement in TEXT_DDL:
        conn.execute(statement)


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    """The tombstones table, part of every store from now on.

    A schema-3 store made it on the first deletion after a FAISS save, so it may be there
    already (with rows that still count) or not (no deletion was recorded yet).
    """
    table = CreateTable(Base.metadata.tables[Tombstone.__tablename__], if_not_exists=True)
    conn.execute(str(table.compile(dialect=sqlite_dialect.dialect())))


def _v4_to_v5(conn: sqlite3.Connection) -> None:
    """Object vectors stored as float16 where they agree with float32 (:mod:`.vector_codec`).

    Rows are rewritten in place; the database file keeps its size (the freed pages take new
    rows) until a ``VACUUM``. The FAISS file is untouched: it keeps the float32 vectors it
    was built from, and agrees with the stored ones to a cosine of at least 0.9999.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'embed_dim'").fetchone()
    dim = int(row[0]) if row and row[0] else 0
    if not dim:
        return  # no dimension recorded: readers could not tell the widths apart

    def compact(blob: bytes) -> bytes:
        return encode_vector(np.frombuffer(blob, dtype=np.float32))

    conn.create_function("objsearch_compact_vector", 1, compact, deterministic=True)
    conn.execute(
        "UPDATE regions SET vector = objsearch_compact_vector(vector) "
        "WHERE length(vector) = ? AND kind != ?",
        (4 * dim, KIND_IMAGE),
    )


STEPS: dict[int, MigrationStep] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}


def backup_path(db_path: str, version: int) -> str:
    return f"{db_path}.schema{version}.bak"


def _backup(db_path: str, version: int) -> None:
    """A consistent copy of the database (WAL included) before it is changed."""
    target = backup_path(db_path, version)
    tmp = target + ".tmp"
    src = sqlite3.connect(db_path)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)


def upgrade(db_path: str, version: int) -> int:
    """Bring the database at ``db_path`` from ``version`` up to :data:`SCHEMA_VERSION`."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"This index was written by a newer objsearch (schema {version}, this version "
            f"reads up to {SCHEMA_VERSION}). Upgrade objsearch."
        )
    if version == SCHEMA_VERSION:
        return version
    folder = os.path.dirname(db_path)
    if not (os.access(folder, os.W_OK) and os.access(db_path, os.W_OK)):
        raise StoreError(
            f"The index at {folder} uses schema {version} and must be upgraded to schema "
            f"{SCHEMA_VERSION}, but it is read-only: open it once with write access "
            f"(e.g. 'objsearch status --index {folder}')."
        )
    try:
        _backup(db_path, version)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(
            f"Cannot back up the index at {folder} before upgrading it ({exc}); "
            "it was left unchanged."
        ) from None
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            current = version
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                current = int(row[0])  # re-read: another process may have upgraded meanwhile
                if current >= SCHEMA_VERSION:
                    conn.execute("ROLLBACK")
                    return current
                step = STEPS.get(current)
                if step is None:
                    raise StoreError(f"This objsearch cannot upgrade an index of schema {current}.")
                step(conn)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(current + 1),)
                )
                conn.execute("COMMIT")
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(
                        f"Cannot upgrade the index at {folder} ({exc}); it was left unchanged "
                        f"at schema {current}."
                    ) from None
                raise
    finally:
        conn.close()
