"""The index folder: SQLite metadata (source of truth) plus a derived FAISS file.

Layout of an index folder::

    objsearch.db      SQLite (WAL): photos, regions (with vectors), failures, meta
    vectors.faiss     FAISS index over region vectors, ids = region ids
    lock              advisory lock held by the one process allowed to write

Every change to regions happens in one SQLite transaction that also bumps the ``generation``
counter in ``meta``. The FAISS file records the generation it was built from; a file whose
generation or vector count disagrees with SQLite is stale and gets rebuilt from SQLite, so
a crash at any moment costs at most a rebuild, never a wrong answer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import (
    ForeignKey,
    Index,
    LargeBinary,
    String,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    defer,
    mapped_column,
    relationship,
)

from .errors import IndexLockedError, StoreError
from .vectors import IndexParams, VectorIndex

SCHEMA_VERSION = 1
DB_NAME = "objsearch.db"
FAISS_NAME = "vectors.faiss"
LOCK_NAME = "lock"

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


# Schema migrations: MIGRATIONS[n] upgrades a version-n database to n + 1.
MIGRATIONS: dict[int, Any] = {}


@dataclass
class NewRegion:
    """A region ready to store: box in original pixels, unit vector."""

    kind: str
    box: tuple[float, float, float, float]
    vector: np.ndarray
    label: str | None = None
    confidence: float | None = None


@dataclass
class NewPhoto:
    """A photo ready to store with all of its regions."""

    path: str
    size: int
    mtime_ns: int
    width: int
    height: int
    content_hash: str
    caption: str
    regions: list[NewRegion] = field(default_factory=list)


@dataclass
class BatchChanges:
    """What one committed batch changed, so the in-memory FAISS index can follow."""

    added_ids: np.ndarray
    added_vectors: np.ndarray
    removed_ids: np.ndarray
    generation: int


@dataclass(frozen=True)
class PhotoState:
    id: int
    size: int
    mtime_ns: int
    content_hash: str


@dataclass(frozen=True)
class Counts:
    photos: int
    objects: int
    images: int
    failures: int

    @property
    def regions(self) -> int:
        return self.objects + self.images


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def acquire_writer_lock(index_dir: str) -> int:
    """Take the index's writer lock; returns its file descriptor.

    ``flock`` locks die with their process, so a killed indexer never leaves a stale lock.
    The holder's PID is written into the lock file so a refused writer can name it.
    """
    import fcntl

    fd = os.open(os.path.join(index_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise IndexLockedError(
                f"The index {index_dir} is locked by PID {holder}, which is writing to it. "
                "Wait for it to finish (searching works meanwhile)."
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def release_writer_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)


class Store:
    """Opens (or creates) an index folder. One writer at a time, any number of readers."""

    def __init__(self, index_dir: str | os.PathLike[str], *, create: bool = False) -> None:
        self.dir = os.path.abspath(os.fspath(index_dir))
        self.db_path = os.path.join(self.dir, DB_NAME)
        self.faiss_path = os.path.join(self.dir, FAISS_NAME)
        self.lock_path = os.path.join(self.dir, LOCK_NAME)
        self._lock_fd: int | None = None
        if not os.path.exists(self.db_path):
            if not create:
                raise StoreError(
                    f"No objsearch index at {self.dir}: build one with "
                    f"'objsearch index PHOTOS_DIR --index {self.dir}'."
                )
            try:
                os.makedirs(self.dir, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create index folder {self.dir}: {exc.strerror}") from None
        if create and not os.access(self.dir, os.W_OK):
            raise StoreError(f"Index folder {self.dir} is not writable.")
        self.engine = create_engine(f"sqlite:///{self.db_path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "handle_error", self._on_error)
        try:
            self._init_schema(create)
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            self.engine.dispose()
            raise self._corrupt(exc) from None
        except StoreError:
            self.engine.dispose()
            raise

    def _corrupt(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"The index database {self.db_path} is unreadable or corrupt ({_reason(exc)}). "
            f"Run 'objsearch doctor --index {self.dir}' to recover what it still holds."
        )

    def _on_error(self, context: ExceptionContext) -> None:
        """Turn corruption found by any later query into the same clear error as at open.

        A damaged page can hide until a query reads it (the schema page opens fine), so the
        check at open time alone would let a raw driver error out of search, index or status.
        """
        if _is_corruption(context.original_exception):
            raise self._corrupt(context.original_exception) from None

    # -- schema --------------------------------------------------------------------------
    def _init_schema(self, create: bool) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        if create:
            Base.metadata.create_all(self.engine)
        version = self.get_meta("schema_version")
        if version is None:
            if not create:
                raise StoreError(f"{self.db_path} is not an objsearch index (no schema version).")
            self.set_meta(schema_version=SCHEMA_VERSION, generation=0)
            return
        current = int(version)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"This index was written by a newer objsearch (schema {current}, this version "
                f"reads up to {SCHEMA_VERSION}). Upgrade objsearch."
            )
        while current < SCHEMA_VERSION:
            with self.session() as s, s.begin():
                MIGRATIONS[current](s)
            current += 1
            self.set_meta(schema_version=current)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.unlock()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.session() as s:
            return {m.key: m.value for m in s.scalars(select(Meta))}

    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(Meta, key)
            return row.value if row else None

    def set_meta(self, **values: object) -> None:
        with self.session() as s, s.begin():
            for key, value in values.items():
                s.merge(Meta(key=key, value=str(value)))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- locking -------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the writer lock or raise :class:`IndexLockedError` naming the holder's PID."""
        self._lock_fd = acquire_writer_lock(self.dir)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            release_writer_lock(self._lock_fd)
            self._lock_fd = None

    # -- reads ---------------------------------------------------------------------------
    def photo_states(self) -> dict[str, PhotoState]:
        """Path -> (id, size, mtime, hash) for every photo: what a re-scan compares against."""
        with self.session() as s:
            rows = s.execute(
                select(Photo.path, Photo.id, Photo.size, Photo.mtime_ns, Photo.content_hash)
            )
            return {r[0]: PhotoState(r[1], r[2], r[3], r[4]) for r in rows}

    def counts(self) -> Counts:
        with self.session() as s:
            photos = s.scalar(select(func.count(Photo.id))) or 0
            by_kind = dict(
                s.execute(select(Region.kind, func.count(Region.id)).group_by(Region.kind)).all()
            )
            failures = s.scalar(select(func.count(Failure.id))) or 0
        return Counts(photos, by_kind.get(KIND_OBJECT, 0), by_kind.get(KIND_IMAGE, 0), failures)

    def failures(self) -> list[Failure]:
        with self.session() as s:
            return list(s.scalars(select(Failure).order_by(Failure.path)))

    def regions_with_photos(self, ids: Sequence[int]) -> dict[int, tuple[Region, Photo]]:
        """Region id -> (region, photo) for the ids that still exist."""
        out: dict[int, tuple[Region, Photo]] = {}
        ids = [int(i) for i in ids]
        with self.session() as s:
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                query = select(Region, Photo).join(Photo).where(Region.id.in_(chunk))
                rows = s.execute(query.options(defer(Region.vector)))  # 2 KB each, not needed
                for region, photo in rows:
                    out[region.id] = (region, photo)
        return out

    def photo_with_regions(self, photo_id: int) -> tuple[Photo, list[Region]] | None:
        """One photo and its regions (without vectors), or None for an unknown id."""
        with self.session() as s:
            photo = s.get(Photo, int(photo_id))
            if photo is None:
                return None
            query = select(Region).where(Region.photo_id == photo.id).order_by(Region.id)
            return photo, list(s.scalars(query.options(defer(Region.vector))))

    def region_vector(self, region_id: int) -> np.ndarray | None:
        """The stored unit vector of one region, or None for an unknown id."""
        with self.session() as s:
            data = s.scalar(select(Region.vector).where(Region.id == int(region_id)))
        return None if data is None else np.frombuffer(data, dtype=np.float32).copy()

    def iter_photos(self) -> Iterator[tuple[Photo, list[Region]]]:
        """Every photo with its regions, ordered by path (for export)."""
        with self.session() as s:
            last = ""
            while True:
                photos = list(
                    s.scalars(
                        select(Photo).where(Photo.path > last).order_by(Photo.path).limit(500)
                    )
                )
                if not photos:
                    return
                by_photo: dict[int, list[Region]] = {p.id: [] for p in photos}
                regions = s.scalars(
                    select(Region).where(Region.photo_id.in_(list(by_photo))).order_by(Region.id)
                )
                for region in regions:
                    by_photo[region.photo_id].append(region)
                for photo in photos:
                    yield photo, by_photo[photo.id]
                last = photos[-1].path

    def iter_vectors(self, chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in id order, in chunks, to rebuild FAISS with bounded memory."""
        dim = int(self.get_meta("embed_dim") or 0)
        last = 0
        with self.session() as s:
            while True:
                rows = s.execute(
                    select(Region.id, Region.vector)
                    .where(Region.id > last)
                    .order_by(Region.id)
                    .limit(chunk)
                ).all()
                if not rows:
                    return
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
                yield ids, vecs.reshape(len(rows), dim if dim else -1)
                last = int(ids[-1])

    # -- writes --------------------------------------------------------------------------
    def commit_batch(
        self,
        photos: Iterable[NewPhoto],
        failures: Iterable[tuple[str, str, str]] = (),
        *,
        remove_photo_ids: Iterable[int] = (),
        moves: Iterable[tuple[int, str, int, int]] = (),
        touches: Iterable[tuple[int, int, int]] = (),
    ) -> BatchChanges:
        """Apply one batch of changes in a single transaction and bump the generation.

        ``photos`` replace any photo at the same path; ``failures`` are (path, stage,
        reason); ``moves`` are (photo id, new path, size, mtime) for renamed files;
        ``touches`` are (photo id, size, mtime) for files whose bytes did not change.
        """
        removed: list[int] = []
        added: list[Region] = []
        vectors: list[np.ndarray] = []
        now = time.time()
        try:
            with self.session() as s, s.begin():
                remove_ids = set(remove_photo_ids)
                for pid, new_path, size, mtime_ns in moves:
                    s.execute(delete(Failure).where(Failure.path == new_path))
                    s.execute(
                        update(Photo)
                        .where(Photo.id == pid)
                        .values(path=new_path, size=size, mtime_ns=mtime_ns)
                    )
                for pid, size, mtime_ns in touches:
                    s.execute(
                        update(Photo).where(Photo.id == pid).values(size=size, mtime_ns=mtime_ns)
                    )
                photos = list(photos)
                if photos:
                    existing = s.execute(
                        select(Photo.id).where(Photo.path.in_([p.path for p in photos]))
                    ).scalars()
                    remove_ids.update(existing)
                if remove_ids:
                    ids = list(remove_ids)
                    for start in range(0, len(ids), 900):
                        chunk = ids[start : start + 900]
                        removed += s.scalars(
                            select(Region.id).where(Region.photo_id.in_(chunk))
                        ).all()
                        s.execute(delete(Region).where(Region.photo_id.in_(chunk)))
                        s.execute(delete(Photo).where(Photo.id.in_(chunk)))
                for new in photos:
                    photo = Photo(
                        path=new.path,
                        size=new.size,
                        mtime_ns=new.mtime_ns,
                        width=new.width,
                        height=new.height,
                        content_hash=new.content_hash,
                        caption=new.caption,
                        indexed_at=now,
                    )
                    for r in new.regions:
                        vec = np.ascontiguousarray(r.vector, dtype=np.float32)
                        region = Region(
                            kind=r.kind,
                            x1=float(r.box[0]),
                            y1=float(r.box[1]),
                            x2=float(r.box[2]),
                            y2=float(r.box[3]),
                            label=r.label,
                            confidence=None if r.confidence is None else float(r.confidence),
                            vector=vec.tobytes(),
                        )
                        photo.regions.append(region)
                        added.append(region)
                        vectors.append(vec)
                    s.add(photo)
                    s.execute(delete(Failure).where(Failure.path == new.path))
                for path, stage, reason in failures:
                    s.merge(_failure(s, path, stage, reason, now))
                s.flush()
                generation = int(s.get(Meta, "generation").value) + 1
                s.merge(Meta(key="generation", value=str(generation)))
        except OperationalError as exc:
            raise _write_error(self.dir, exc) from None
        dim = len(vectors[0]) if vectors else 0
        return BatchChanges(
            added_ids=np.array([r.id for r in added], dtype=np.int64),
            added_vectors=np.stack(vectors) if vectors else np.zeros((0, dim), np.float32),
            removed_ids=np.array(removed, dtype=np.int64),
            generation=generation,
        )

    def clear_failures(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        with self.session() as s, s.begin():
            for start in range(0, len(paths), 900):
                s.execute(delete(Failure).where(Failure.path.in_(paths[start : start + 900])))

    # -- FAISS ---------------------------------------------------------------------------
    def faiss_is_fresh(self) -> bool:
        """True when the FAISS file was written for the current SQLite generation."""
        meta = self.meta()
        if meta.get("faiss_generation") != meta.get("generation"):
            return False
        if not os.path.exists(self.faiss_path):
            return False
        return str(os.path.getsize(self.faiss_path)) == meta.get("faiss_bytes")

    def load_vectors(self, params: IndexParams = IndexParams()) -> tuple[VectorIndex, bool]:
        """The FAISS index for the current generation: (index, loaded_from_file).

        A missing, stale or unreadable file is replaced by an in-memory rebuild from SQLite;
        writers then call :meth:`save_vectors` to persist it.
        """
        if self.faiss_is_fresh():
            try:
                index = VectorIndex.load(self.faiss_path, params)
                if index.ntotal == self.counts().regions:
                    return index, True
            except (RuntimeError, OSError):
                pass  # corrupt or truncated file: rebuild below
        return self.rebuild_vectors(params=params), False

    def rebuild_vectors(
        self, kind: str | None = None, params: IndexParams = IndexParams()
    ) -> VectorIndex:
        """Rebuild the FAISS index from the vectors stored in SQLite."""
        meta = self.meta()
        dim = int(meta.get("embed_dim") or 0)
        kind = kind or meta.get("faiss_kind_requested", "auto")
        parts = list(self.iter_vectors())
        if dim == 0:
            dim = parts[0][1].shape[1] if parts else 1
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        vecs = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, dim), np.float32)
        return VectorIndex.build(ids, vecs, dim, kind, params)

    def save_vectors(self, index: VectorIndex, generation: int) -> None:
        """Persist FAISS for ``generation``: file first, then the record that vouches for it."""
        try:
            size = index.save(self.faiss_path)
        except OSError as exc:
            raise _write_error(self.dir, exc) from None
        self.set_meta(faiss_generation=generation, faiss_bytes=size, faiss_kind=index.kind)


def remove_temp_files(index_dir: str) -> int:
    """Delete the FAISS temp files of saves that a killed writer never finished.

    Each is as large as the FAISS index and nothing else would ever remove them. Call only
    with the writer lock held, so that no save is in progress. Returns how many went.
    """
    removed = 0
    for name in os.listdir(index_dir):
        if name.startswith(".vectors-") and name.endswith(".tmp"):  # see VectorIndex.save
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(index_dir, name))
                removed += 1
    return removed


def _failure(s: Session, path: str, stage: str, reason: str, now: float) -> Failure:
    row = s.scalar(select(Failure).where(Failure.path == path))
    if row is None:
        return Failure(path=path, stage=stage, reason=reason, at=now)
    row.stage, row.reason, row.at = stage, reason, now
    return row


def _is_corruption(exc: BaseException | None) -> bool:
    """True for SQLite's "database disk image is malformed" and "file is not a database"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return type(exc) is sqlite3.DatabaseError  # the bare class is what both codes raise


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def _write_error(folder: str, exc: BaseException) -> StoreError:
    text = _reason(exc)
    low = text.lower()
    if "full" in low or getattr(exc, "errno", None) == errno.ENOSPC:
        hint = (
            "The disk is full: free space and run the same command again; committed work is kept."
        )
    elif (
        "readonly" in low
        or "read-only" in low
        or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES)
    ):
        hint = "The index folder is read-only: index into a writable folder."
    else:
        hint = "Committed work is kept; run the same command again to resume."
    return StoreError(f"Cannot write to the index at {folder} ({text}). {hint}")
