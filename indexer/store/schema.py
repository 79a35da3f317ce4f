"""The SQLite schema of an index folder (SQLAlchemy ORM), and the folder's file names.

Layout of an index folder::

    objsearch.db      SQLite (WAL): photos, regions (with vectors), failures, meta
    vectors.faiss     FAISS index over region vectors, ids = region ids
    lock              advisory lock held by the one process allowed to write
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 1
DB_NAME = "objsearch.db"
FAISS_NAME = "vectors.faiss"
LOCK_NAME = "lock"
VECTORS_LOCK_NAME = "vectors.lock"

KIND_IMAGE = "image"
KIND_OBJECT = "object"


class Base(DeclarativeBase):
    pass


class Photo(Base):
    """One photo file. ``width``/``height`` are the upright (EXIF-rotated) pixel size."""

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

    regions: Mapped[list[Region]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True
    )


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


class Failure(Base):
    """A file that could not be indexed, with the reason shown to people."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str]
    at: Mapped[float]


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str]
