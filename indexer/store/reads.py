"""Reading an index database: photo states for a scan, counts, records for results.

One mixin of :class:`~indexer.store.database.Store`. Hot paths (a re-scan's photo states,
FAISS rebuilds) read plain tuples from the driver; the rest read ORM rows without vectors
unless they are wanted (2 KB each).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from .engine import StoreEngine
from .records import Counts, PhotoState, UnreadPhoto
from .schema import KIND_IMAGE, KIND_OBJECT, Failure, Photo, Region, TextRead, TextRegion
from .vector_codec import decode_vector, decode_vectors
from .write_errors import is_corruption

T = TypeVar("T")

# SQLite caps the number of bound parameters per statement; IN lists go in chunks of this.
IN_CHUNK = 900


def chunked(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` (for ``IN (...)`` clauses)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _in_chunks(
    select: str, column: str, values: Sequence[object], tail: str = ""
) -> list[tuple[str, tuple]]:
    """(sql, parameters) statements of ``select`` for rows whose ``column`` is in ``values``,
    one per :func:`chunked` slice (SQLite caps the parameters of one statement)."""
    return [
        (f"{select} WHERE {column} IN ({','.join('?' * len(chunk))}){tail}", tuple(chunk))
        for chunk in chunked(values)
    ]


def _by_id(columns: str, ids: Iterable[int]) -> list[tuple[str, tuple]]:
    """Statements reading ``columns`` of the regions with these ids, in id order."""
    wanted = np.unique(np.fromiter(ids, np.int64)).tolist()
    return _in_chunks(f"SELECT {columns} FROM regions", "id", wanted, " ORDER BY id")


class StoreReads(StoreEngine):
    """The store's read queries."""

    def photo_states(self, paths: Sequence[str] | None = None) -> dict[str, PhotoState]:
        """Path -> (id, size, mtime, hash) for every photo (or those at ``paths``).

        What a re-scan compares against: one row per photo, read without ORM objects
        (200,000 photos in well under a second).
        """
        sql = "SELECT path, id, size, mtime_ns, content_hash, date_source IS NOT NULL FROM photos"
        statements = [(sql, ())] if paths is None else _in_chunks(sql, "path", list(paths))
        parts = self._plain_reads(statements)
        return {
            r[0]: PhotoState(r[1], r[2], r[3], r[4], bool(r[5])) for part in parts for r in part
        }

    def _read(self, driver: sqlite3.Connection, sql: str, params: tuple) -> list[tuple]:
        """Rows of a query on the driver connection, with the store's error messages."""
        try:
            return driver.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
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

    def count_regions(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Region)) or 0)

    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ids found, their stored vectors as float32), in id order.

        Primary-key reads, on every search of a compressed index (its candidates' exact
        vectors): plain SQL on the driver connection, since a session's per-statement work
        cost more than the reads (6 ms against 1.6 ms for 300 rows).
        """
        dim_sql = ("SELECT value FROM meta WHERE key = 'embed_dim'", ())
        dim_rows, *parts = self._plain_reads([dim_sql, *_by_id("id, vector", ids)])
        rows = [row for part in parts for row in part]
        dim = int(dim_rows[0][0]) if dim_rows else 0
        found, blobs = zip(*rows, strict=True) if rows else ((), ())
        return np.array(found, np.int64), decode_vectors(blobs, dim)

    def region_owners(self, ids: Iterable[int]) -> dict[int, tuple[str, int]]:
        """Region id -> (kind, photo id) for the ids that still exist.

        What ranking needs of every FAISS neighbour (about a hundred a search) to group and
        skip them; full records are then read for the winners only (:meth:`regions_with_photos`).
        Plain SQL: ORM rows for every neighbour cost more than the search itself at a million
        regions with HNSW (reading only the winners' records took its p50 from 9.3 to 7.2 ms).
        """
        parts = self._plain_reads(_by_id("id, kind, photo_id", ids))
        return {r[0]: (r[1], r[2]) for part in parts for r in part}

    def _plain_reads(self, queries: Iterable[tuple[str, tuple]]) -> list[list[tuple]]:
        """The rows of each (sql, parameters), read as plain tuples on one driver connection."""
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection  # plain tuples: no row objects
            assert isinstance(driver, sqlite3.Connection)
            return [self._read(driver, sql, params) for sql, params in queries]

    def dim(self) -> int:
        """The store's vector dimension (0 while no model has written one)."""
        return int(self.get_meta("embed_dim") or 0)

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
        return None if data is None else decode_vector(data, self.dim())

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
                yield ids, decode_vectors([r[1] for r in rows], dim)
                last = int(ids[-1])
