"""The SQLite schema of an index folder (SQLAlchemy ORM), and the folder's file names.

Layout of an index folder::

    objsearch.db      SQLite (WAL): photos (with EXIF metadata), regions (with vectors:
                      float16 since schema 5, see indexer.store.vector_codec),
                      failures, meta, photo_text (full-text search over captions, labels
                      and file names, kept current by triggers), text_regions (the text
                      lines read in photos, no vectors) with text_reads (which photos
                      were read) and their full-text tables text_search and photo_words,
                      tombstones (regions deleted since the FAISS main segment was built)
    vectors.faiss     FAISS main segment over region vectors, ids = region ids; regions
                      added or deleted since it was built are a delta and tombstones
                      (see indexer.store.live)
    lock              advisory lock held by the one process allowed to write
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 5
DB_NAME = "objsearch.db"
FAISS_NAME = "vectors.faiss"
LOCK_NAME = "lock"
VECTORS_LOCK_NAME = "vectors.lock"

KIND_IMAGE = "image"
KIND_OBJECT = "object"
KIND_TEXT = "text"


class Base(DeclarativeBase):
    pass


class Photo(Base):
    """One photo file. ``width``/``height`` are the upright (EXIF-rotated) pixel size.

    ``taken_at`` is ISO local time (``2023-07-14T18:30:05``) and ``date_source`` says where
    it came from (see :mod:`indexer.media.metadata`); both are None for a photo indexed
    before metadata was recorded, until the next index run reads it.
    """

    __tablename__ = "photos"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    size: Mapped[int]
    mtime_ns: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(32), index=True)
    caption: Mapped[str] = mapped_column(default="")
    indexed_at: Mapped[float]
    taken_at: Mapped[str | None] = mapped_column(String(19), index=True, default=None)
    date_source: Mapped[str | None] = mapped_column(String(16), default=None)
    camera: Mapped[str | None] = mapped_column(default=None)
    gps_lat: Mapped[float | None] = mapped_column(index=True, default=None)
    gps_lon: Mapped[float | None] = mapped_column(default=None)

    regions: Mapped[list[Region]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def gps(self) -> dict[str, float] | None:
        if self.gps_lat is None or self.gps_lon is None:
            return None
        return {"lat": self.gps_lat, "lon": self.gps_lon}

    def metadata_dict(self) -> dict[str, object]:
        """The metadata keys of search JSON and export."""
        return {
            "taken_at": self.taken_at,
            "date_source": self.date_source,
            "camera": self.camera,
            "gps": self.gps,
        }


class Region(Base):
    """A searchable region: the whole photo (``kind='image'``) or one detected object.

    Boxes are in original-photo pixels; a whole-photo region spans the photo. Ids are never
    reused (AUTOINCREMENT), so a stale FAISS id can never point at a different region.
    """

    __tablename__ = "regions"
    __table_args__ = (Index("ix_regions_photo", "photo_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    x1: Mapped[float]
    y1: Mapped[float]
    x2: Mapped[float]
    y2: Mapped[float]
    label: Mapped[str | None]
    confidence: Mapped[float | None]
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    photo: Mapped[Photo] = relationship(back_populates="regions")

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def shown_box(self) -> tuple[float, float, float, float] | None:
        """The box as results show it: rounded, and None for a whole-photo region."""
        if self.kind != KIND_OBJECT:
            return None
        x1, y1, x2, y2 = (round(v, 2) for v in self.box)
        return (x1, y1, x2, y2)

    @property
    def shown_confidence(self) -> float | None:
        """The detector confidence as results show it (rounded), None for whole photos."""
        return None if self.confidence is None else round(self.confidence, 4)


class TextRegion(Base):
    """A line of text read in a photo (``kind='text'`` in results): box, words, confidence.

    Text lines have no CLIP vector, so they live beside ``regions`` rather than in it: the
    FAISS file, its delta and tombstones, and every exact ranking read ``regions`` only and
    never meet a region without a vector. ``folded`` is its words case- and accent-folded,
    space-separated (:func:`indexer.textfold.searchable`); the trigram table ``text_search``
    indexes it.
    """

    __tablename__ = "text_regions"
    __table_args__ = (Index("ix_text_regions_photo", "photo_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    x1: Mapped[float]
    y1: Mapped[float]
    x2: Mapped[float]
    y2: Mapped[float]
    text: Mapped[str]
    folded: Mapped[str]
    confidence: Mapped[float]

    kind = KIND_TEXT

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def shown_box(self) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = (round(v, 2) for v in (self.x1, self.y1, self.x2, self.y2))
        return (x1, y1, x2, y2)

    @property
    def shown_confidence(self) -> float:
        return round(self.confidence, 4)


class TextRead(Base):
    """A photo whose text has been read (``--ocr``), by which engine, even if it had none.

    A later ``--ocr`` run reads only photos without a row here; the row goes with the photo.
    """

    __tablename__ = "text_reads"

    photo_id: Mapped[int] = mapped_column(
        ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    engine: Mapped[str]
    at: Mapped[float]


class Failure(Base):
    """A file that could not be indexed, with the reason shown to people."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str]
    at: Mapped[float]


class Tombstone(Base):
    """A region deleted from SQLite that the main FAISS segment still holds.

    Written in the transaction that deletes the region, cleared when a new main segment is
    recorded: a search leaves these ids out without a rebuild (see :mod:`.live`). Derived
    bookkeeping: if it is lost, loading the vectors finds the deleted ids the slow way.
    Part of the schema since version 4 (earlier stores created it on first use).
    """

    __tablename__ = "tombstones"

    region_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str]


def _basename(path: str) -> str:
    """SQL for the file name of a path column (SQLite has no basename function)."""
    return f"substr({path}, length(rtrim({path}, replace({path}, '/', ''))) + 1)"


# Full-text search over what people call a photo (caption, detector labels, file name), and
# the index that label filters use. Triggers keep photo_text in step with every write path
# (index, move, delete, doctor), in the same transaction.
SEARCH_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS photo_text "
    "USING fts5(caption, labels, name, tokenize = 'porter unicode61')",
    "CREATE INDEX IF NOT EXISTS ix_regions_label ON regions (label COLLATE NOCASE)",
    "CREATE TRIGGER IF NOT EXISTS photo_text_insert AFTER INSERT ON photos BEGIN "
    "INSERT INTO photo_text (rowid, caption, labels, name) "
    f"VALUES (new.id, new.caption, '', {_basename('new.path')}); END",
    "CREATE TRIGGER IF NOT EXISTS photo_text_update AFTER UPDATE OF path, caption ON photos "
    f"BEGIN UPDATE photo_text SET caption = new.caption, name = {_basename('new.path')} "
    "WHERE rowid = new.id; END",
    "CREATE TRIGGER IF NOT EXISTS photo_text_delete AFTER DELETE ON photos BEGIN "
    "DELETE FROM photo_text WHERE rowid = old.id; END",
    "CREATE TRIGGER IF NOT EXISTS photo_text_label AFTER INSERT ON regions "
    "WHEN new.label IS NOT NULL BEGIN "
    "UPDATE photo_text SET labels = labels || ' ' || new.label WHERE rowid = new.photo_id; END",
)


# The text read in photos (schema 3). text_search: trigram full-text over each line's folded
# text, for part-of-word matches ("bake" in "BAKERY") through the index, not a scan.
# photo_words: a photo's lines together, word-tokenized and stemmed like photo_text, for
# --match. Triggers keep both in step with text_regions in the same transaction.
TEXT_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS text_search USING fts5(folded, tokenize = 'trigram')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS photo_words "
    "USING fts5(words, tokenize = 'porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS text_search_insert AFTER INSERT ON text_regions BEGIN "
    "INSERT INTO text_search (rowid, folded) VALUES (new.id, new.folded); "
    "INSERT INTO photo_words (rowid, words) SELECT new.photo_id, '' "
    "WHERE NOT EXISTS (SELECT 1 FROM photo_words WHERE rowid = new.photo_id); "
    "UPDATE photo_words SET words = words || ' ' || new.text WHERE rowid = new.photo_id; END",
    "CREATE TRIGGER IF NOT EXISTS text_search_delete AFTER DELETE ON text_regions BEGIN "
    "DELETE FROM text_search WHERE rowid = old.id; "
    "DELETE FROM photo_words WHERE rowid = old.photo_id; END",
)
