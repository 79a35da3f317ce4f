"""The FAISS file's lifecycle: load, rebuild, publish, tombstones and compaction.

One mixin of :class:`~indexer.store.database.Store`. SQLite is the truth and the FAISS file
is derived: a main segment that stays as it was built, while meta records its size, count,
largest region id and a stamp of its tail. Region ids are never reused and a region's vector
never changes, so the file stays valid as SQLite moves on: regions added since are the delta
(ids above the recorded largest one), regions deleted since are tombstones (a table written
in the batch transaction that deletes them), and a count check proves both complete (see
:mod:`.live`). A file that is missing, damaged or not this store's is rebuilt; whoever
rebuilds it (the writer, or the first reader that finds it stale) puts it in place under
the short vectors lock (:mod:`.lock`), so a file and its record always belong together.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..errors import StoreError
from . import ivf
from .folder import writable_folder
from .ivf import IVFPQ_MIN_VECTORS
from .live import LiveVectors, MainRecord, VectorStatus
from .lock import vectors_lock
from .reads import StoreReads
from .schema import Meta, Region, Tombstone
from .vector_codec import decode_vectors
from .vectors import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    IndexParams,
    VectorIndex,
    choose_index_type,
    discard,
    publish,
)
from .write_errors import write_error


class VectorFile(StoreReads):
    """The store's FAISS main segment, its record in meta, and the searchable vectors."""

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
            self._attach_exact(main)
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
        self,
        index_type: str | None = None,
        params: IndexParams = IndexParams(),
        *,
        retrain: bool = False,
    ) -> VectorIndex:
        """Rebuild the FAISS index from the vectors stored in SQLite.

        ``retrain`` trains a compressed index's quantizers afresh instead of reusing those of
        the current file (``doctor`` does when the data has drifted).
        """
        meta = self.meta()
        dim = int(meta.get("embed_dim") or 0)
        index_type = index_type or meta.get("faiss_kind_requested", "auto")
        count = self.count_regions()
        if dim and choose_index_type(index_type, count) == "ivfpq" and count >= IVFPQ_MIN_VECTORS:
            return self._attach_exact(self._build_ivfpq(dim, count, params, retrain))
        parts = list(self.iter_vectors())
        if dim == 0:
            dim = parts[0][1].shape[1] if parts else 1
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        vecs = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, dim), np.float32)
        return self._attach_exact(VectorIndex.build(ids, vecs, dim, index_type, params))

    def _build_ivfpq(
        self, dim: int, count: int, params: IndexParams, retrain: bool = False
    ) -> VectorIndex:
        """A compressed index, streamed from SQLite: never all vectors in memory at once.

        The quantizers of the current main file are reused when they still suit the store
        (:func:`.ivf.emptied`); otherwise they train on a uniform sample of
        :func:`.ivf.sample_size` vectors, read in one pass before the vectors are added.
        """
        trained = None if retrain else ivf.emptied(self.faiss_path, dim, count)
        error = None
        if trained is None:
            sample = ivf.sample_parts(self.iter_vectors(), count, ivf.sample_size(count))
            trained, error = ivf.train_with_holdout(sample, dim, count)
        index = VectorIndex(ivf.fill(trained, self.iter_vectors()), "ivfpq", params)
        index.train_error = error
        return index

    def quantizer_drift(self) -> float | None:
        """How much worse the newest vectors quantize than held-out ones did at training.

        1.0 means no drift; ``doctor`` retrains above :data:`.ivf.DRIFT_RATIO`. None when
        the main file is not a compressed index with a recorded baseline.
        """
        meta = self.meta()
        baseline = float(meta.get("ivfpq_train_error") or 0)
        if meta.get("faiss_kind") != "ivfpq" or baseline <= 0:
            return None
        try:
            main = VectorIndex.load(self.faiss_path, mapped=True)
        except (RuntimeError, OSError):
            return None
        with self._snapshot() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id FROM regions ORDER BY id DESC LIMIT ?", (ivf.DRIFT_SAMPLE,)
            ).all()
        _, vectors = self.vectors_of(np.array([r[0] for r in rows], np.int64))
        if not len(vectors) or main.dim != vectors.shape[1]:
            return None
        return ivf.quantization_error(main.index, vectors) / baseline

    def _attach_exact(self, index: VectorIndex) -> VectorIndex:
        """Give a compressed index SQLite's exact vectors for re-ranking its candidates."""
        if index.index_type == "ivfpq":
            index.exact = self.vectors_of
        return index

    def compact_vectors(
        self, index_type: str | None = None, *, retrain: bool = False
    ) -> VectorIndex:
        """Rebuild the main segment from SQLite and save it: no delta, no tombstones after.

        Call with the writer lock held, so that no commit lands between the rebuild and
        its record.
        """
        generation = self.generation
        index = self.rebuild_vectors(index_type, retrain=retrain)
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
            raise write_error(self.dir, exc) from None

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
        if index.train_error is not None:  # fresh quantizers: a new drift baseline
            values["ivfpq_train_error"] = index.train_error
        with self.session() as s, s.begin():
            for key, value in values.items():
                s.merge(Meta(key=key, value=str(value)))
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


def _temp_files(index_dir: str) -> list[str]:
    """The FAISS temp files in ``index_dir`` (see :meth:`VectorIndex.write_temp`)."""
    return [
        os.path.join(index_dir, name)
        for name in os.listdir(index_dir)
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)
    ]


def count_temp_files(index_dir: str) -> int:
    """How many FAISS temp files unfinished saves left (:func:`remove_temp_files` removes)."""
    return len(_temp_files(index_dir))


def remove_temp_files(index_dir: str) -> int:
    """Delete the FAISS temp files of saves that a killed writer never finished.

    Each is as large as the FAISS index and nothing else would ever remove them. Call only
    with the writer lock held, so that no writer's save is in progress; a reader writing
    back a rebuild at that moment loses its temp file and keeps its index in memory.
    Returns how many went.
    """
    removed = 0
    for path in _temp_files(index_dir):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed += 1
    return removed


def add_tombstones(s: Session, removed: Sequence[int]) -> None:
    """Record deleted regions that the main FAISS segment holds (ids up to its largest).

    Called inside the batch transaction that deletes them, so the two never disagree.
    """
    row = s.get(Meta, "faiss_max_id")
    if row is None or not removed:
        return
    held = [{"region_id": i} for i in removed if i <= int(row.value)]
    if held:
        s.execute(insert(Tombstone).prefix_with("OR IGNORE"), held)


def _pending_counts(conn: Connection, record: MainRecord | None) -> tuple[int, int, int]:
    """(regions, regions above the main segment, recorded tombstones) by counting."""
    regions = int(conn.scalar(select(func.count()).select_from(Region)) or 0)
    if record is None:
        return regions, regions, 0
    above = select(func.count()).select_from(Region).where(Region.id > record.max_id)
    delta = int(conn.scalar(above) or 0)
    tombstones = int(conn.scalar(select(func.count()).select_from(Tombstone)) or 0)
    return regions, delta, tombstones


def _tombstone_ids(conn: Connection, record: MainRecord) -> np.ndarray:
    if not record.count:
        return np.zeros(0, np.int64)
    rows = conn.execute(select(Tombstone.region_id)).all()
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
    return ids, decode_vectors([r[1] for r in rows], dim).reshape(len(rows), dim)
