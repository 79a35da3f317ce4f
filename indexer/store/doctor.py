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

import os
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, delete, func, select

from ..errors import CorruptIndexError, StoreError, first_line
from ..settings import expand_path
from .database import Store, remove_temp_files
from .folder import read_only_filesystem, writable_folder
from .ivf import DRIFT_RATIO
from .lock import writer_lock
from .salvage import salvage_database
from .schema import DB_NAME, KIND_IMAGE, Photo, Region, TextRead, TextRegion
from .vector_file import count_temp_files
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
    quantizer_drift: float | None = None
    """For a compressed (``ivfpq``) index: how much worse the newest vectors quantize than
    held-out ones did at training (1.0: none); ``doctor`` retrains above ``drift_limit``."""
    drift_limit: float = DRIFT_RATIO
    problems: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.quantizer_drift is not None and self.quantizer_drift > self.drift_limit

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _bad_vectors(store: Store, dim: int) -> list[int]:
    """Regions whose vector is neither ``dim`` float16 nor ``dim`` float32 components."""
    if not dim:
        return []
    with store.session() as s:
        widths = (dim * 2, dim * 4)  # see .vector_codec: each blob's size gives its type
        rows = s.execute(select(Region.id).where(func.length(Region.vector).not_in(widths)))
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
        quantizer_drift=store.quantizer_drift() if detail is None else None,
        problems=problems,
        failed=failed,
    )


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
    if not writable_folder(index_dir):
        raise StoreError(_read_only_report(index_dir))
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


def _read_only_report(index_dir: str) -> str:
    """Why ``doctor`` changed nothing in a folder it cannot write, and what it checked."""
    findings = "\n".join(f"- {line}" for line in read_only_findings(index_dir))
    what = "read-only" if read_only_filesystem(index_dir) else "not writable"
    return (
        f"The index folder {index_dir} is {what}, so doctor repaired nothing. "
        f"What it could check without writing:\n{findings}\n"
        "To repair it, run doctor where the folder can be written (remount it read-write, "
        "or copy the index folder to a writable place)."
    )


def read_only_findings(index_dir: str) -> list[str]:
    """What can be learnt of an index without writing a byte: structure, consistency, FAISS.

    The database is opened read-only (an index that needs a schema upgrade cannot be read
    that way, and says so).
    """
    leftovers = count_temp_files(index_dir)
    temp = [f"{leftovers} temporary FAISS files left by a killed run"] if leftovers else []
    try:
        store = _open_intact(index_dir)
    except StoreError as exc:
        return [f"the database could not be opened: {exc}", *temp]
    if store is None:
        return ["the database is damaged (SQLite's structural check fails)", *temp]
    with store:
        health = check(store)
    detail = f" ({health.vectors_detail})" if health.vectors_detail else ""
    if health.vectors_pending:
        detail += f", {health.vectors_pending} vectors added or deleted since it was built"
    return [
        "the database passes SQLite's structural check",
        *(f"problem: {p}" for p in health.problems),
        *([] if health.problems else ["SQLite is consistent"]),
        f"the FAISS file is {health.vectors_file}{detail}",
        f"{health.photos} photos, {health.failures} recorded failures",
        *temp,
    ]


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
    if health.drifted:
        index = store.compact_vectors(retrain=True)
        actions.append(
            f"retrained the compressed index on the current vectors: the newest quantized "
            f"{health.quantizer_drift:.2f}x worse than at training (limit {DRIFT_RATIO}x); "
            f"rebuilt it from SQLite ({index.ntotal} vectors, {index.index_type})"
        )
    elif (
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
