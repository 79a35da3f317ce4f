"""The index folder: SQLite metadata (source of truth) plus a derived FAISS file.

See :mod:`.schema` for the folder's layout.

Every change to regions happens in one SQLite transaction that also bumps the ``generation``
counter in ``meta`` and records the deleted regions that the FAISS file still holds
(tombstones). The FAISS file is a main segment that stays as it was built: meta records its
size, count and largest region id. Region ids are never reused and a region's vector never
changes, so the file stays valid as SQLite moves on: regions added since are the delta (ids
above the recorded largest one), regions deleted since are tombstones, and a count check
proves both complete (see :mod:`.live`). A crash at any moment costs at most a rebuild,
never a wrong answer; a file that is missing, damaged or not this store's is rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
from sqlalchemy import Connection, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, defer

from ..errors import CorruptIndexError, StoreError, first_line
from ..media.metadata import PhotoMetadata
from ..settings import expand_path
from ..textfold import searchable
from .live import LiveVectors, MainRecord, VectorStatus
from .lock import acquire_writer_lock, release_writer_lock, vectors_lock
from .migrations import upgrade
from .records import (
    BatchChanges,
    Counts,
    FailureRecord,
    NewPhoto,
    PhotoMove,
    PhotoState,
    PhotoText,
    PhotoTouch,
    UnreadPhoto,
)
from .schema import (
    DB_NAME,
    FAISS_NAME,
    KIND_IMAGE,
    KIND_OBJECT,
    LOCK_NAME,
    SCHEMA_VERSION,
    SEARCH_DDL,
    TEXT_DDL,
    Base,
    Failure,
    Meta,
    Photo,
    Region,
    TextRead,
    TextRegion,
    Tombstone,
)
from .vectors import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    IndexParams,
    VectorIndex,
    discard,
    publish,
)

T = TypeVar("T")

# SQLite caps the number of bound parameters per statement; IN lists go in chunks of this.
IN_CHUNK = 900


def chunked(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` (for ``IN (...)`` clauses)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def read_only_filesystem(path: str) -> bool:
    """True when ``path`` lies on a file system mounted read-only (no one can write it)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def writable_folder(path: str) -> bool:
    return os.access(path, os.W_OK) and not read_only_filesystem(path)


def check_creatable(index_dir: str) -> None:
    """Raise :class:`StoreError` unless an index can be written at ``index_dir``.

    Cheap, and done before any model loads: a run that would fail on the folder should
    fail in milliseconds, not after seconds of model loading.
    """
    target = expand_path(index_dir)
    existing = target
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise StoreError(f"Cannot create index folder {target}: {existing} is not a folder.")
    if not writable_folder(existing):
        raise StoreError(_not_writable(target, existing))


def _not_writable(index_dir: str, folder: str) -> str:
    what = "read-only" if read_only_filesystem(folder) else "not writable"
    where = "The index folder" if folder == index_dir else f"Cannot create {index_dir}:"
    return (
        f"{where} {folder} is {what}: index into a writable folder "
        "(a read-only index can still be searched)."
    )


class Store:
    """Opens (or creates) an index folder. One writer at a time, any number of readers."""

    def __init__(self, index_dir: str | os.PathLike[str], *, create: bool = False) -> None:
        self.dir = expand_path(index_dir)
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
            check_creatable(self.dir)
            try:
                os.makedirs(self.dir, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create index folder {self.dir}: {exc.strerror}") from None
        if create and not writable_folder(self.dir):
            raise StoreError(_not_writable(self.dir, self.dir))
        # Nobody can write a read-only file system, so SQLite may skip its WAL index (which
        # it could not create there) and read the file as it is.
        self.read_only = not create and read_only_filesystem(self.dir)
        url = f"sqlite:///file:{self.db_path}?immutable=1&uri=true"
        self.engine = create_engine(
            url if self.read_only else f"sqlite:///{self.db_path}", connect_args={"timeout": 30}
        )
        if not self.read_only:
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

    def _corrupt(self, exc: BaseException) -> CorruptIndexError:
        return CorruptIndexError(
            f"The index database {self.db_path} is unreadable or corrupt ({first_line(exc)}). "
            f"Run 'objsearch doctor --index {self.dir}' to recover what it still holds."
        )

    def _on_error(self, context: ExceptionContext) -> None:
        """Turn corruption found by any later query into the same clear error as at open.

        A damaged page can hide until a query reads it (the schema page opens fine), so the
        check at open time alone would let a raw driver error out of search, index or status.
        """
        if _is_corruption(context.original_exception):
            raise self._corrupt(context.original_exception) from None
        if _is_write_failure(context.original_exception):
            raise _write_error(self.dir, context.original_exception) from None

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
            with self.engine.begin() as conn:
                for statement in (*SEARCH_DDL, *TEXT_DDL):
                    conn.exec_driver_sql(statement)
            self.set_meta(schema_version=SCHEMA_VERSION, generation=0)
            return
        upgrade(self.db_path, int(version))

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
    def photo_states(self, paths: Sequence[str] | None = None) -> dict[str, PhotoState]:
        """Path -> (id, size, mtime, hash) for every photo (or those at ``paths``).

        What a re-scan compares against: one row per photo, read without ORM objects
        (200,000 photos in well under a second).
        """
        sql = "SELECT path, id, size, mtime_ns, content_hash, date_source IS NOT NULL FROM photos"
        out: dict[str, PhotoState] = {}
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection  # plain tuples: no row objects
            for chunk in [None] if paths is None else chunked(list(paths)):
                where = "" if chunk is None else f" WHERE path IN ({','.join('?' * len(chunk))})"
                rows = self._read(driver, sql + where, tuple(chunk or ()))
                for r in rows:
                    out[r[0]] = PhotoState(r[1], r[2], r[3], r[4], bool(r[5]))
        return out

    def _read(self, driver: sqlite3.Connection, sql: str, params: tuple) -> list[tuple]:
        """Rows of a query on the driver connection, with the store's error messages."""
        try:
            return driver.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise self._corrupt(exc) from None
            raise

    def counts(self) -> Counts:
        with self.session() as s:
            photos = s.scalar(select(func.count(Photo.id))) or 0
            by_kind = dict(
                s.execute(select(Region.kind, func.count(Region.id)).group_by(Region.kind)).all()
            )
            failures = s.scalar(select(func.count(Failure.id))) or 0
            texts = s.scalar(select(func.count(TextRegion.id))) or 0
            read = s.scalar(select(func.count(TextRead.photo_id))) or 0
        return Counts(
            photos, by_kind.get(KIND_OBJECT, 0), by_kind.get(KIND_IMAGE, 0), failures, texts, read
        )

    def failures(self) -> list[Failure]:
        with self.session() as s:
            return list(s.scalars(select(Failure).order_by(Failure.path)))

    def regions_with_photos(self, ids: Sequence[int]) -> dict[int, tuple[Region, Photo]]:
        """Region id -> (region, photo) for the ids that still exist."""
        out: dict[int, tuple[Region, Photo]] = {}
        ids = [int(i) for i in ids]
        with self.session() as s:
            for chunk in chunked(ids):
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

    def texts_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[TextRegion]]:
        """Photo id -> its text lines, top to bottom (photos without text are left out)."""
        out: dict[int, list[TextRegion]] = {}
        with self.session() as s:
            for chunk in chunked([int(i) for i in photo_ids]):
                query = select(TextRegion).where(TextRegion.photo_id.in_(chunk))
                for line in s.scalars(query.order_by(TextRegion.y1, TextRegion.x1)):
                    out.setdefault(line.photo_id, []).append(line)
        return out

    def unread_photos(self, paths: Iterable[str]) -> list[UnreadPhoto]:
        """The photos at ``paths`` whose text has not been read yet, by path."""
        out: list[UnreadPhoto] = []
        with self.session() as s:
            for chunk in chunked(sorted(paths)):
                rows = s.execute(
                    select(Photo.id, Photo.path, Photo.content_hash)
                    .where(Photo.path.in_(chunk))
                    .where(Photo.id.not_in(select(TextRead.photo_id)))
                    .order_by(Photo.path)
                )
                out += [UnreadPhoto(*row) for row in rows]
        return out

    def region_vector(self, region_id: int) -> np.ndarray | None:
        """The stored unit vector of one region, or None for an unknown id."""
        with self.session() as s:
            data = s.scalar(select(Region.vector).where(Region.id == int(region_id)))
        return None if data is None else np.frombuffer(data, dtype=np.float32).copy()

    def iter_photos(self, *, vectors: bool = True) -> Iterator[tuple[Photo, list[Region]]]:
        """Every photo with its regions, ordered by path (for export).

        ``vectors=False`` leaves the regions' vectors unread (2 KB each; exports show none).
        """
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
                query = select(Region).where(Region.photo_id.in_(list(by_photo)))
                if not vectors:
                    query = query.options(defer(Region.vector))
                regions = s.scalars(query.order_by(Region.id))
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
        failures: Iterable[FailureRecord] = (),
        *,
        remove_photo_ids: Iterable[int] = (),
        moves: Iterable[PhotoMove] = (),
        touches: Iterable[PhotoTouch] = (),
        texts: Iterable[PhotoText] = (),
    ) -> BatchChanges:
        """Apply one batch of changes in a single transaction and bump the generation.

        ``photos`` replace any photo at the same path; ``moves`` re-path renamed files and
        ``touches`` update the stat of files whose bytes did not change; ``texts`` are the
        text read in stored photos (replacing what was read in them before).
        """
        photos = list(photos)
        now = time.time()
        try:
            with self.session() as s, s.begin():
                self._apply_stat_changes(s, moves, touches)
                remove_ids = set(remove_photo_ids)
                if photos:
                    paths = [p.path for p in photos]
                    remove_ids.update(s.scalars(select(Photo.id).where(Photo.path.in_(paths))))
                removed = _remove_photos(s, list(remove_ids))
                _add_tombstones(s, removed)
                added, vectors = _add_photos(s, photos, now)
                _add_texts(s, list(texts), now)
                for failure in failures:
                    s.merge(_failure(s, failure, now))
                s.flush()
                generation = int(s.get(Meta, "generation").value) + 1
                s.merge(Meta(key="generation", value=str(generation)))
        except OperationalError as exc:
            raise _write_error(self.dir, exc) from None
        dim = len(vectors[0]) if vectors else 0
        return BatchChanges(
            added_ids=np.array(added, dtype=np.int64),
            added_vectors=np.stack(vectors) if vectors else np.zeros((0, dim), np.float32),
            removed_ids=np.array(removed, dtype=np.int64),
            generation=generation,
        )

    @staticmethod
    def _apply_stat_changes(
        s: Session, moves: Iterable[PhotoMove], touches: Iterable[PhotoTouch]
    ) -> None:
        for move in moves:
            s.execute(delete(Failure).where(Failure.path == move.path))
            s.execute(
                update(Photo)
                .where(Photo.id == move.photo_id)
                .values(
                    path=move.path,
                    size=move.size,
                    mtime_ns=move.mtime_ns,
                    **_metadata_columns(move.metadata),
                )
            )
        for touch in touches:
            s.execute(
                update(Photo)
                .where(Photo.id == touch.photo_id)
                .values(
                    size=touch.size, mtime_ns=touch.mtime_ns, **_metadata_columns(touch.metadata)
                )
            )

    def clear_failures(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        with self.session() as s, s.begin():
            for chunk in chunked(paths):
                s.execute(delete(Failure).where(Failure.path.in_(chunk)))

    # -- FAISS ---------------------------------------------------------------------------
    def clear_stale_failures(self, keep: Iterable[str] = ()) -> int:
        """Forget failures that no longer apply; returns how many went.

        A failure is stale when its file no longer exists, or when the file is indexed
        with its current size and modification time (a later run read it fine). Paths in
        ``keep`` (this run's own failures) stay, and so do names stored with escapes (not
        valid UTF-8), which cannot be looked up.
        """
        keep = set(keep)
        failures = self.failures()
        if not failures:
            return 0
        states = self.photo_states([f.path for f in failures])
        stale = []
        for failure in failures:
            path = failure.path
            if path in keep or "\\x" in path:
                continue
            try:
                st = os.stat(path)
            except OSError:
                if not os.path.lexists(path):
                    stale.append(path)
                continue
            state = states.get(path)
            if state and (state.size, state.mtime_ns) == (st.st_size, st.st_mtime_ns):
                stale.append(path)
        if stale:
            self.clear_failures(stale)
        return len(stale)

    def faiss_is_fresh(self) -> bool:
        """True when the FAISS file was written for the current SQLite generation."""
        meta = self.meta()
        if meta.get("faiss_generation") != meta.get("generation"):
            return False
        if not os.path.exists(self.faiss_path):
            return False
        return str(os.path.getsize(self.faiss_path)) == meta.get("faiss_bytes")

    def vector_status(self) -> VectorStatus:
        """The main FAISS segment against SQLite, from counts (milliseconds at any size)."""
        with self._snapshot() as conn:
            record = self._main_record(conn)
            regions, delta, tombstones = _pending_counts(conn, record)
        return VectorStatus(record, regions, delta, tombstones)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A connection inside one read transaction: every query sees the same commit."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")  # the driver would run each SELECT on its own
            yield conn

    def _main_record(self, conn: Connection) -> MainRecord | None:
        """What meta says of the main FAISS file, or None when it cannot be used.

        Unusable: missing, another file than recorded (size and tail hash: a torn save or
        a foreign file), or a store whose id counter fell below the file's largest id (a
        salvaged database: new regions could reuse ids the file holds with other vectors).
        """
        meta = dict(conn.execute(select(Meta.key, Meta.value)).all())
        try:
            size = os.path.getsize(self.faiss_path)
        except OSError:
            return None
        if "faiss_bytes" not in meta or str(size) != meta["faiss_bytes"]:
            return None
        generation = int(meta.get("faiss_generation") or -1)
        if "faiss_stamp" in meta and "faiss_max_id" in meta:
            try:
                if file_stamp(self.faiss_path) != meta["faiss_stamp"]:
                    return None  # e.g. a rebuild renamed into place, then a crash
            except OSError:
                return None
            max_id, count = int(meta["faiss_max_id"]), int(meta.get("faiss_count") or 0)
        elif meta.get("faiss_generation") == meta.get("generation"):
            # Written before segments were recorded, but for this very generation: the
            # file holds exactly SQLite's regions.
            max_id = int(conn.scalar(select(func.max(Region.id))) or 0)
            count = int(conn.scalar(select(func.count()).select_from(Region)) or 0)
        else:
            return None
        seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'regions'")
        if max_id > int(seq.scalar() or 0):
            return None
        return MainRecord(generation, size, max_id, count, meta.get("faiss_kind") or "flat")

    def load_vectors(
        self,
        params: IndexParams = IndexParams(),
        *,
        persist: bool = False,
        reuse: LiveVectors | None = None,
    ) -> tuple[LiveVectors, bool]:
        """The searchable vectors of the current generation: (vectors, main loaded from file).

        The main segment is memory-mapped from the file (or taken from ``reuse`` when it is
        the same file), and the delta and tombstones come from SQLite, all as of one commit.
        A missing, damaged or foreign file is replaced by an in-memory rebuild from SQLite;
        readers pass ``persist`` so the first of them writes its rebuild back
        (:meth:`persist_vectors`) and later cold starts load the file instead.
        """
        for _ in range(3):  # a writer may swap the file meanwhile: look again
            loaded = self._load_segments(params, reuse)
            if loaded is not None:
                return loaded, True
        generation = self.generation
        index = self.rebuild_vectors(params=params)
        if persist:
            self.persist_vectors(index, generation)
        return LiveVectors(index), False

    def _load_segments(self, params: IndexParams, reuse: LiveVectors | None) -> LiveVectors | None:
        with self._snapshot() as conn:
            record = self._main_record(conn)
            if record is None:
                return None
            if reuse is not None and reuse.record == record:
                main = reuse.main
            else:
                try:
                    main = VectorIndex.load(self.faiss_path, params, mapped=True)
                    # The file checked against its record before and after reading it, so
                    # a rebuild renamed into place meanwhile is never paired with it.
                    same = self._main_record(conn) == record
                except (RuntimeError, OSError):
                    return None  # damaged: rebuild
                if not same:
                    return None
            if main.ntotal != record.count:
                return None
            regions, delta_count, tomb_count = _pending_counts(conn, record)
            if delta_count + record.count - tomb_count != regions:
                tombstones = _missing_ids(conn, main, record)  # unrecorded deletions
            else:
                tombstones = _tombstone_ids(conn, record)
            ids, vectors = _vectors_above(conn, record.max_id, main.dim)
        delta = VectorIndex.empty(main.dim, "flat", params)
        delta.add(ids, vectors)
        return LiveVectors(main, tombstones, delta, max_id=record.max_id, record=record)

    def persist_vectors(self, index: VectorIndex, generation: int) -> bool:
        """Write a reader's rebuild for ``generation`` back to disk, if nothing stands in the way.

        Never waits: when another process is putting a FAISS file in place, when the index
        has moved on since ``generation`` (its writer saves then), when the file is fresh
        already, or when the folder cannot be written (read-only, full), the rebuild simply
        stays in memory. Returns True when the file was written.
        """
        if self.read_only or index.ntotal == 0 or not writable_folder(self.dir):
            return False
        try:
            tmp = index.write_temp(self.dir)
        except OSError:
            return False
        try:
            with vectors_lock(self.dir, wait=False) as locked:
                if not locked or self.generation != generation or self.faiss_is_fresh():
                    return False
                size = publish(tmp, self.faiss_path)
                self._record_vectors(index, generation, size)
                return True
        except (OSError, StoreError):
            return False  # a writer cleared the temp file, or the disk filled up
        finally:
            discard(tmp)

    def rebuild_vectors(
        self, index_type: str | None = None, params: IndexParams = IndexParams()
    ) -> VectorIndex:
        """Rebuild the FAISS index from the vectors stored in SQLite."""
        meta = self.meta()
        dim = int(meta.get("embed_dim") or 0)
        index_type = index_type or meta.get("faiss_kind_requested", "auto")
        parts = list(self.iter_vectors())
        if dim == 0:
            dim = parts[0][1].shape[1] if parts else 1
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        vecs = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, dim), np.float32)
        return VectorIndex.build(ids, vecs, dim, index_type, params)

    def compact_vectors(self, index_type: str | None = None) -> VectorIndex:
        """Rebuild the main segment from SQLite and save it: no delta, no tombstones after.

        Call with the writer lock held, so that no commit lands between the rebuild and
        its record.
        """
        generation = self.generation
        index = self.rebuild_vectors(index_type)
        self.save_vectors(index, generation)
        return index

    def save_vectors(self, index: VectorIndex, generation: int) -> None:
        """Persist FAISS for ``generation``: file first, then the record that vouches for it.

        The file is written outside the vectors lock; the lock covers only the rename and
        the meta record, so a reader writing back its own rebuild can never pair its file
        with this record (or the other way round), and nobody waits longer than a rename.
        """
        try:
            tmp = index.write_temp(self.dir)
            try:
                with vectors_lock(self.dir, wait=True):
                    size = publish(tmp, self.faiss_path)
                    self._record_vectors(index, generation, size)
            finally:
                discard(tmp)
        except OSError as exc:
            raise _write_error(self.dir, exc) from None

    def _record_vectors(self, index: VectorIndex, generation: int, size: int) -> None:
        """Record a new main segment and drop the tombstones of the one it replaces."""
        ids = index.ids()
        values = {
            "faiss_generation": generation,
            "faiss_bytes": size,
            "faiss_kind": index.index_type,
            "faiss_max_id": int(ids.max()) if len(ids) else 0,
            "faiss_count": index.ntotal,
            "faiss_stamp": file_stamp(self.faiss_path),
        }
        with self.session() as s, s.begin():
            for key, value in values.items():
                s.merge(Meta(key=key, value=str(value)))
            _ensure_tombstones(s)
            s.execute(delete(Tombstone))


def file_stamp(path: str) -> str:
    """Size and a hash of the last 64 KiB of a FAISS file: which file it is, cheaply.

    The tail of an id-mapped index is its id map, which every change alters (new regions
    append higher ids; deletions shrink it), and unlike an inode or mtime it survives a copy.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    return f"{size}:{hashlib.blake2b(tail, digest_size=12).hexdigest()}"


def remove_temp_files(index_dir: str) -> int:
    """Delete the FAISS temp files of saves that a killed writer never finished.

    Each is as large as the FAISS index and nothing else would ever remove them. Call only
    with the writer lock held, so that no writer's save is in progress; a reader writing
    back a rebuild at that moment loses its temp file and keeps its index in memory.
    Returns how many went.
    """
    removed = 0
    for name in os.listdir(index_dir):
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):  # see write_temp
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(index_dir, name))
                removed += 1
    return removed


def _metadata_columns(metadata: PhotoMetadata | None) -> dict[str, object]:
    """Photo column values for ``metadata`` (none when it was not read)."""
    if metadata is None:
        return {}
    return {
        "taken_at": metadata.taken_at,
        "date_source": metadata.date_source,
        "camera": metadata.camera,
        "gps_lat": metadata.gps_lat,
        "gps_lon": metadata.gps_lon,
    }


def _remove_photos(s: Session, photo_ids: list[int]) -> list[int]:
    """Delete photos with their regions and text; returns the removed region ids."""
    removed: list[int] = []
    for chunk in chunked(photo_ids):
        removed += s.scalars(select(Region.id).where(Region.photo_id.in_(chunk))).all()
        s.execute(delete(Region).where(Region.photo_id.in_(chunk)))
        _delete_texts(s, chunk)
        s.execute(delete(Photo).where(Photo.id.in_(chunk)))
    return removed


def _add_photos(
    s: Session, photos: Sequence[NewPhoto], now: float
) -> tuple[list[int], list[np.ndarray]]:
    """Insert photos with their regions; returns the new region ids and their vectors.

    Two multi-row INSERTs per batch (photos, then regions) rather than ORM objects: the
    ORM's per-object work made commits the slowest stage on a GPU.
    """
    if not photos:
        return [], []
    photo_ids = s.scalars(
        insert(Photo).returning(Photo.id, sort_by_parameter_order=True),
        [
            {
                "path": new.path,
                "size": new.size,
                "mtime_ns": new.mtime_ns,
                "width": new.width,
                "height": new.height,
                "content_hash": new.content_hash,
                "caption": new.caption,
                "indexed_at": now,
                **_metadata_columns(new.metadata),
            }
            for new in photos
        ],
    ).all()
    rows: list[dict[str, object]] = []
    vectors: list[np.ndarray] = []
    for photo_id, new in zip(photo_ids, photos, strict=True):
        for r in new.regions:
            vec = np.ascontiguousarray(r.vector, dtype=np.float32)
            rows.append(
                {
                    "photo_id": photo_id,
                    "kind": r.kind,
                    **_box_columns(r.box),
                    "label": r.label,
                    "confidence": None if r.confidence is None else float(r.confidence),
                    "vector": vec.tobytes(),
                }
            )
            vectors.append(vec)
    region_ids = list(
        s.scalars(insert(Region).returning(Region.id, sort_by_parameter_order=True), rows).all()
    )
    _add_texts(
        s,
        [
            PhotoText(photo_id, new.texts, new.text_engine)
            for photo_id, new in zip(photo_ids, photos, strict=True)
            if new.text_engine is not None
        ],
        now,
    )
    for chunk in chunked([new.path for new in photos]):
        s.execute(delete(Failure).where(Failure.path.in_(chunk)))
    return region_ids, vectors


def _box_columns(box: Sequence[float]) -> dict[str, float]:
    return {"x1": float(box[0]), "y1": float(box[1]), "x2": float(box[2]), "y2": float(box[3])}


def _delete_texts(s: Session, photo_ids: Sequence[int]) -> None:
    """Forget the text read in these photos (lines and read marks)."""
    for chunk in chunked(list(photo_ids)):
        s.execute(delete(TextRegion).where(TextRegion.photo_id.in_(chunk)))
        s.execute(delete(TextRead).where(TextRead.photo_id.in_(chunk)))


def _add_texts(s: Session, texts: Sequence[PhotoText], now: float) -> None:
    """Store the text read in photos and mark them read (what was there before goes)."""
    if not texts:
        return
    _delete_texts(s, [t.photo_id for t in texts])
    rows = [
        {
            "photo_id": t.photo_id,
            **_box_columns(line.box),
            "text": line.text,
            "folded": searchable(line.text),
            "confidence": float(line.confidence),
        }
        for t in texts
        for line in t.lines
    ]
    if rows:
        s.execute(insert(TextRegion), rows)
    s.execute(
        insert(TextRead), [{"photo_id": t.photo_id, "engine": t.engine, "at": now} for t in texts]
    )


def _failure(s: Session, failure: FailureRecord, now: float) -> Failure:
    row = s.scalar(select(Failure).where(Failure.path == failure.path))
    if row is None:
        return Failure(path=failure.path, stage=failure.stage, reason=failure.reason, at=now)
    row.stage, row.reason, row.at = failure.stage, failure.reason, now
    return row


def _is_corruption(exc: BaseException | None) -> bool:
    """True for SQLite's "database disk image is malformed" and "file is not a database"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return type(exc) is sqlite3.DatabaseError  # the bare class is what both codes raise


def _is_write_failure(exc: BaseException | None) -> bool:
    """True for SQLite errors that mean "cannot write here": full disk, read-only, I/O."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith(("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR"))


def _write_error(folder: str, exc: BaseException) -> StoreError:
    text = first_line(exc)
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


def _add_tombstones(s: Session, removed: Sequence[int]) -> None:
    """Record deleted regions that the main FAISS segment holds (ids up to its largest)."""
    row = s.get(Meta, "faiss_max_id")
    if row is None or not removed:
        return
    held = [{"region_id": i} for i in removed if i <= int(row.value)]
    if held:
        _ensure_tombstones(s)
        s.execute(insert(Tombstone).prefix_with("OR IGNORE"), held)


def _ensure_tombstones(s: Session) -> None:
    """Create the tombstones table in a store written before it existed (in the transaction)."""
    Tombstone.__table__.create(s.connection(), checkfirst=True)


def _pending_counts(conn: Connection, record: MainRecord | None) -> tuple[int, int, int]:
    """(regions, regions above the main segment, recorded tombstones) by counting."""
    regions = int(conn.scalar(select(func.count()).select_from(Region)) or 0)
    if record is None:
        return regions, regions, 0
    above = select(func.count()).select_from(Region).where(Region.id > record.max_id)
    delta = int(conn.scalar(above) or 0)
    try:
        tombstones = int(conn.scalar(select(func.count()).select_from(Tombstone)) or 0)
    except OperationalError:  # a store written before tombstones were recorded
        tombstones = 0
    return regions, delta, tombstones


def _tombstone_ids(conn: Connection, record: MainRecord) -> np.ndarray:
    if not record.count:
        return np.zeros(0, np.int64)
    try:
        rows = conn.execute(select(Tombstone.region_id)).all()
    except OperationalError:
        return np.zeros(0, np.int64)
    return np.array([r[0] for r in rows], dtype=np.int64)


def _missing_ids(conn: Connection, main: VectorIndex, record: MainRecord) -> np.ndarray:
    """Ids of the main segment that SQLite no longer holds, by comparing both id sets.

    The fallback when the recorded tombstones do not account for every deletion (a
    reader's rebuild recorded over a writer's deletions): a scan of the region ids, read
    from the photo index (ids only) rather than the table (2 KB vectors per row).
    """
    sql = "SELECT group_concat(id) FROM regions INDEXED BY ix_regions_photo WHERE id <= ?"
    try:
        rows = conn.exec_driver_sql(sql, (record.max_id,)).scalar()
    except OperationalError:  # no such index: read the table
        rows = conn.exec_driver_sql(
            sql.replace(" INDEXED BY ix_regions_photo", ""), (record.max_id,)
        ).scalar()
    live = np.array(rows.split(","), dtype=np.int64) if rows else np.zeros(0, np.int64)
    held = main.ids()
    return held[~np.isin(held, live)]


def _vectors_above(conn: Connection, max_id: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the regions added since the main segment was built."""
    rows = conn.execute(
        select(Region.id, Region.vector).where(Region.id > max_id).order_by(Region.id)
    ).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    data = b"".join(r[1] for r in rows)
    return ids, np.frombuffer(data, dtype=np.float32).reshape(len(rows), dim)
