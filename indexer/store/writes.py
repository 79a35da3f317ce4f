"""Writing an index database: one batch of changes per transaction, and failure upkeep.

One mixin of :class:`~indexer.store.database.Store`. A batch (new photos with their regions
and text, moves, touches, removals, failures) is one SQLite transaction that also records
the removed regions the FAISS file still holds (tombstones) and bumps the generation, so a
reader sees all of a batch or none of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..media.metadata import PhotoMetadata
from ..textfold import searchable
from .reads import StoreReads, chunked
from .records import BatchChanges, FailureRecord, NewPhoto, PhotoMove, PhotoText, PhotoTouch
from .schema import Failure, Meta, Photo, Region, TextRead, TextRegion
from .vector_codec import compact_vector, decode_vector, encode_vector
from .vector_file import add_tombstones
from .write_errors import write_error


class StoreWrites(StoreReads):
    """The store's writes: batches, and forgetting failures that no longer apply."""

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
                add_tombstones(s, removed)
                added, vectors = _add_photos(s, photos, now)
                _add_texts(s, list(texts), now)
                for failure in failures:
                    s.merge(_failure(s, failure, now))
                s.flush()
                row = s.get(Meta, "generation")
                generation = int(row.value if row is not None else 0) + 1
                s.merge(Meta(key="generation", value=str(generation)))
        except OperationalError as exc:
            raise write_error(self.dir, exc) from None
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
    dim_row = s.get(Meta, "embed_dim")  # readers tell float16 from float32 by the dimension
    dim = int(dim_row.value) if dim_row is not None and dim_row.value else 0
    for photo_id, new in zip(photo_ids, photos, strict=True):
        for r in new.regions:
            blob = encode_vector(r.vector, compact=compact_vector(r.kind, np.size(r.vector), dim))
            vec = decode_vector(blob, dim)  # what every later reader gets back
            rows.append(
                {
                    "photo_id": photo_id,
                    "kind": r.kind,
                    **_box_columns(r.box),
                    "label": r.label,
                    "confidence": None if r.confidence is None else float(r.confidence),
                    "vector": blob,
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
