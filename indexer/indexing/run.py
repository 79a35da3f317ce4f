"""The bookkeeping of one index run: what it commits, what it counts, when FAISS is saved.

:class:`IndexRun` is the one writer of a run, whichever executor computed the regions (this
process, or a Ray cluster streaming them back). Each batch of changes is one store
transaction; the counters of :class:`IndexStats` follow what was committed, so a run that
stops part-way reports what is in the index. The run never holds the vectors: each commit
leaves SQLite searchable as it is (new regions form the delta, deleted ones are tombstones;
see :mod:`indexer.store.live`), and the FAISS main segment is rebuilt only when the changes
call for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..media.decode import DecodedPhoto, DecodeError, FileDigest, read_file_metadata
from ..media.scan import under
from ..store.database import Store
from ..store.live import compaction_reason
from ..store.records import FailureRecord, NewPhoto, PhotoMove, PhotoText, PhotoTouch
from ..store.vectors import choose_index_type
from .failures import decode_failure
from .plan import Plan, Work
from .regions import EmbedFn, embed_isolating
from .text_reading import text_failures
from .timing import Timings, timed

T = TypeVar("T")

# Photos in a run's first batch (see batches).
FIRST_BATCH = 4


@dataclass
class IndexStats:
    """What one ``index`` run did. ``photos_per_second`` counts photos that ran the models."""

    scanned: int = 0
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    objects: int = 0
    texts: int = 0
    """Text lines stored (``ocr``)."""
    read: int = 0
    """Photos whose text was read (``ocr``), with or without text in them."""
    failures: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)

    @property
    def photos_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "scanned": self.scanned,
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "moved": self.moved,
            "removed": self.removed,
            "objects": self.objects,
            "texts": self.texts,
            "read": self.read,
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 3),
            "missing": list(self.missing_roots),
        }


def batches(items: Iterable[T], size: int, first: int = FIRST_BATCH) -> Iterator[list[T]]:
    """Batches of ``size``, but the first holds at most ``first`` items.

    Each batch ends in a commit, and a new index is searchable from its first commit on:
    a small first batch makes that seconds, not a full batch of model work, after the start.
    """
    batch: list[T] = []
    limit = min(size, first)
    for item in items:
        batch.append(item)
        if len(batch) >= limit:
            yield batch
            batch, limit = [], size
    if batch:
        yield batch


@dataclass
class SortedBatch:
    """A decoded or hashed batch split by what each file needs."""

    failures: list[FailureRecord]
    touches: list[PhotoTouch]
    """Known paths whose bytes did not change: only their stat (and metadata) is updated."""
    moves: list[PhotoMove]
    """Known bytes under a new path: only the path changes."""
    for_models: list[int]
    """Positions in the batch of the files that must run the models."""


@dataclass
class EmbeddedBatch:
    """A batch whose models have run, waiting for its commit."""

    photos: list[NewPhoto]
    failures: list[FailureRecord]
    moves: list[PhotoMove]
    touches: list[PhotoTouch]


class IndexRun:
    """State of one indexing run: the store, the counters, and when FAISS was last saved."""

    def __init__(
        self,
        store: Store,
        stats: IndexStats,
        plan: Plan,
        *,
        embed: EmbedFn,
        timings: Timings,
        index_type: str,
        save_every: float,
    ) -> None:
        self.store = store
        self.stats = stats
        self.plan = plan
        self.embed = embed
        self.timings = timings
        self.index_type = index_type
        self.save_every = save_every
        self.generation = store.generation
        self.dirty = True  # the first save checks the FAISS file even if nothing changes
        self.last_save = time.monotonic()

    def commit(
        self,
        photos: list[NewPhoto],
        failures: list[FailureRecord],
        *,
        remove: Sequence[int] = (),
        moves: Sequence[PhotoMove] = (),
        touches: Sequence[PhotoTouch] = (),
        texts: Sequence[PhotoText] = (),
    ) -> None:
        """Commit one batch of changes in one transaction and count its failures."""
        with timed(self.timings, "store"):
            changes = self.store.commit_batch(
                photos, failures, remove_photo_ids=remove, moves=moves, touches=touches, texts=texts
            )
        self.generation = changes.generation  # readers see it through delta and tombstones
        self.dirty = True
        self.stats.failures += len(failures)
        self.stats.failed.extend((f.path, f.reason) for f in failures)

    def commit_metadata(self, work: Sequence[Work]) -> None:
        """Read and store the metadata of photos indexed before it was recorded (no model)."""
        with timed(self.timings, "decode"):
            touches = [
                PhotoTouch(
                    w.previous.id,
                    w.file.size,
                    w.file.mtime_ns,
                    read_file_metadata(w.file.path, w.file.mtime_ns),
                )
                for w in work
                if w.previous is not None
            ]
        self.commit([], [], touches=touches)

    def sort_batch(
        self, batch: Sequence[tuple[Work, DecodedPhoto | FileDigest | DecodeError]]
    ) -> SortedBatch:
        """Split a batch into failures, touches, moves, and the files needing the models.

        Neither a touch nor a move needs a model, locally or on Ray; both count here.
        """
        out = SortedBatch([], [], [], [])
        moved_from = self.plan.moved_from
        for i, (work, result) in enumerate(batch):
            if isinstance(result, DecodeError):
                out.failures.append(decode_failure(work.file.path, result))
                continue
            prev = work.previous
            if prev and prev.content_hash == result.content_hash:
                out.touches.append(
                    PhotoTouch(prev.id, result.size, result.mtime_ns, result.metadata)
                )
                self.stats.unchanged += 1
            elif prev is None and moved_from.get(result.content_hash):
                old = self.plan.states[moved_from[result.content_hash].pop(0)]
                out.moves.append(
                    PhotoMove(old.id, result.path, result.size, result.mtime_ns, result.metadata)
                )
                self.stats.moved += 1
            else:
                out.for_models.append(i)
        return out

    def run_models(self, batch: list[tuple[Work, DecodedPhoto | DecodeError]]) -> EmbeddedBatch:
        """Sort a decoded batch and run the models on the photos that need them."""
        parts = self.sort_batch(batch)
        to_embed = [p for i in parts.for_models if isinstance(p := batch[i][1], DecodedPhoto)]
        photos, failed = embed_isolating(self.embed, to_embed)
        return EmbeddedBatch(photos, parts.failures + failed, parts.moves, parts.touches)

    def commit_embedded(self, embedded: EmbeddedBatch) -> None:
        """Commit an embedded batch in one transaction, then save FAISS if it is time."""
        self.commit_photos(
            embedded.photos, embedded.failures, moves=embedded.moves, touches=embedded.touches
        )
        self.save_if_due()

    def settle_known(self, batch: list[tuple[Work, FileDigest | DecodeError]]) -> list[Work]:
        """Commit the failures, touches and moves of hashed files; return the rest."""
        parts = self.sort_batch(batch)
        if parts.failures or parts.touches or parts.moves:
            self.commit([], parts.failures, moves=parts.moves, touches=parts.touches)
        return [batch[i][0] for i in parts.for_models]

    def commit_photos(
        self,
        photos: list[NewPhoto],
        failures: list[FailureRecord],
        *,
        moves: Sequence[PhotoMove] = (),
        touches: Sequence[PhotoTouch] = (),
    ) -> None:
        """Commit embedded photos (and a batch's other changes) in one transaction."""
        self.commit(photos, failures + text_failures(photos), moves=moves, touches=touches)
        self.stats.indexed += len(photos)
        self.stats.objects += sum(len(p.regions) - 1 for p in photos)
        self.stats.read += sum(p.text_engine is not None for p in photos)
        self.stats.texts += sum(len(p.texts) for p in photos)

    def prune(self, roots: list[str]) -> None:
        """Remove photos that vanished from the scanned folders, and their stale failures."""
        gone = self.plan.gone()
        if gone:
            self.commit([], [], remove=[self.plan.states[p].id for p in gone])
            self.stats.removed += len(gone)
        stale_failures = [
            f.path
            for f in self.store.failures()
            if f.path not in self.plan.seen and under(f.path, roots)
        ]
        if stale_failures:
            self.store.clear_failures(stale_failures)

    def save_if_due(self) -> None:
        """Save FAISS during a run once ``save_every`` seconds passed since the last save."""
        if self.dirty and time.monotonic() - self.last_save > self.save_every:
            self.save(final=False)

    def save(self, final: bool = True) -> None:
        """Rebuild the FAISS main segment if the changes since it call for it.

        A run that changes a few photos of a big index writes nothing here: the main
        segment stays, and its delta and tombstones are already in SQLite. During a run
        (``final=False``) only cheap rebuilds happen; the final save also changes the index
        type when the store's size calls for another one.
        """
        if not self.dirty:
            return
        with timed(self.timings, "faiss"):
            status = self.store.vector_status()
            target = choose_index_type(self.index_type, status.regions)
            reason = compaction_reason(status, target, final=final)
            if reason is not None:
                self.store.set_meta(faiss_kind_requested=self.index_type)
                self.store.compact_vectors(target)
            self.dirty = not final and reason is None
            self.last_save = time.monotonic()
