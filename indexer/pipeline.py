"""The indexing pipeline: files -> regions -> vectors -> store.

:class:`Indexer` scans folders, compares them with the store (new, changed, moved,
unchanged, deleted), decodes changed photos on a thread pool while the models work, runs
the detector over batches of photos and CLIP over batches of crops pooled across photos,
and commits each batch in one SQLite transaction. A crash loses at most the batch in
flight; the next run resumes where the last commit stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .caption import caption
from .config import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_DETECTOR,
    ENV_CLIP_MODEL,
    ENV_DETECTOR,
    DetectOptions,
    resolve,
    resolve_device,
)
from .decode import (
    DEFAULT_DECODE_SIDE,
    DEFAULT_MAX_MEGAPIXELS,
    DecodedPhoto,
    DecodeError,
    read_photo,
)
from .detect import Detections, Detector
from .embed import ClipEmbedder
from .errors import ObjsearchError, StoreError, first_line
from .scan import ScannedFile, ScanProblem, absolute, scan, under
from .store import (
    KIND_IMAGE,
    KIND_OBJECT,
    BatchChanges,
    NewPhoto,
    NewRegion,
    PhotoState,
    Store,
    remove_temp_files,
)
from .vectors import KINDS, VectorIndex, choose_kind

ProgressFn = Callable[[int, int], None]

# Probe vectors of two loadings of the same weights agree to ~1e-6 in fp32 and stay above
# 0.99 across fp32/bf16/fp16; different models land near 0.
SAME_MODEL_COSINE = 0.95


@dataclass
class IndexStats:
    """What one ``index`` run did. ``photos_per_second`` counts photos that ran the models."""

    scanned: int = 0
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    objects: int = 0
    failures: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)

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
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 3),
        }


@dataclass
class _Work:
    """A scanned file that needs reading: new, or changed since the last run."""

    file: ScannedFile
    previous: PhotoState | None


class Indexer:
    """Indexes photo files into an index folder (see the module docstring).

    ``embedder`` and ``detector_model`` let apps and tests inject already-loaded models;
    otherwise they load lazily from ``clip_model``/``detector`` (hub id or local path), only
    when some photo actually needs them, so a no-change re-run loads no model at all.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        clip_model: str | None = None,
        detector: str | None = None,
        device: str | None = None,
        *,
        precision: str | None = None,
        backend: str | None = None,
        options: DetectOptions | None = None,
        detect_objects: bool = True,
        batch_size: int = 16,
        embed_batch_size: int = 64,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
        decode_side: int | None = DEFAULT_DECODE_SIDE,
        faiss_index: str = "auto",
        workers: int = 2,
        save_every: float = 60.0,
        embedder: ClipEmbedder | None = None,
        detector_model: Detector | None = None,
    ) -> None:
        if faiss_index not in KINDS:
            raise ObjsearchError(
                f"Unknown FAISS index type {faiss_index!r}: use one of {', '.join(KINDS)}."
            )
        self.index_dir = os.path.abspath(os.fspath(index_dir))
        self._clip_model = clip_model
        self._detector_name = detector
        self._device = device
        self.precision = precision
        self.backend = backend
        self.options = options or DetectOptions()
        self.detect_objects = detect_objects
        self.batch_size = max(1, int(batch_size))
        self.embed_batch_size = embed_batch_size
        self.max_megapixels = max_megapixels
        self.decode_side = decode_side
        self.faiss_index = faiss_index
        self.workers = max(1, int(workers))
        self.save_every = save_every
        self.embedder = embedder
        self.detector = detector_model
        self.timings: dict[str, float] = defaultdict(float)
        self._checked_store: str | None = None

    # -- models --------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if not hasattr(self, "_resolved_device"):
            self._resolved_device = resolve_device(self._device)
        return self._resolved_device

    def _requested_clip(self, store: Store) -> str:
        return (
            resolve(
                self._clip_model, ENV_CLIP_MODEL, store.get_meta("clip_model") or DEFAULT_CLIP_MODEL
            )
            or DEFAULT_CLIP_MODEL
        )

    def _ensure_embedder(self, store: Store) -> ClipEmbedder:
        if self.embedder is None:
            self.embedder = ClipEmbedder(
                self._requested_clip(store),
                self.device,
                precision=self.precision,
                batch_size=self.embed_batch_size,
                backend=self.backend,
            )
        if self._checked_store != store.dir:
            check_model_matches(store, self.embedder)
            self._checked_store = store.dir
        return self.embedder

    def _ensure_detector(self, store: Store | None = None) -> Detector:
        if self.detector is None:
            name = resolve(self._detector_name, ENV_DETECTOR, DEFAULT_DETECTOR)
            self.detector = Detector(name, self.device, backend=self.backend)
        if store is not None and store.get_meta("detector") != self.detector.model_id:
            store.set_meta(detector=self.detector.model_id)
        return self.detector

    # -- the run -------------------------------------------------------------------------
    def index(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        prune: bool = True,
        progress: ProgressFn | None = None,
    ) -> IndexStats:
        """Bring the index up to date with ``paths`` (folders and/or files).

        With ``prune`` (the default), photos under the given folders that no longer exist are
        removed; pass ``prune=False`` when a folder may be on an unplugged drive.
        """
        started = time.perf_counter()
        roots = absolute(paths)
        store = Store(self.index_dir, create=True)
        try:
            store.lock()
            remove_temp_files(store.dir)
            return self._run(store, roots, prune, progress, started)
        finally:
            store.close()

    def _run(
        self,
        store: Store,
        roots: list[str],
        prune: bool,
        progress: ProgressFn | None,
        started: float,
    ) -> IndexStats:
        stats = IndexStats()
        requested = self._clip_model
        if requested and os.path.isdir(os.path.expanduser(requested)):
            # Local folders are recorded as absolute paths (see ClipEmbedder): compare alike.
            requested = os.path.abspath(os.path.expanduser(requested))
        stored = store.get_meta("clip_model")
        if stored and requested and requested != stored:
            self._ensure_embedder(store)  # refuse a different model before touching anything
        states = store.photo_states()
        work: list[_Work] = []
        seen: set[str] = set()
        scan_failures: list[tuple[str, str, str]] = []
        t0 = time.perf_counter()
        for item in scan(roots):
            stats.scanned += 1
            seen.add(item.path)
            if isinstance(item, ScanProblem):
                scan_failures.append((item.path, "scan", item.reason))
                continue
            prev = states.get(item.path)
            if prev and prev.size == item.size and prev.mtime_ns == item.mtime_ns:
                stats.unchanged += 1
            else:
                work.append(_Work(item, prev))
        self.timings["scan"] += time.perf_counter() - t0
        missing = [p for p in states if p not in seen and under(p, roots)]
        moved_from: dict[str, list[str]] = defaultdict(list)
        for path in missing:
            moved_from[states[path].content_hash].append(path)

        index, fresh = store.load_vectors()
        run = _Run(self, store, index, stats, states, moved_from, fresh=fresh)
        if scan_failures:
            run.commit([], scan_failures)
        total = len(work)
        if progress:
            progress(0, total)
        try:
            done = 0
            for batch in _batches(self._decoded(work), self.batch_size):
                run.process(batch)
                done += len(batch)
                if progress:
                    progress(done, total)
                run.maybe_save()
            gone = [p for paths_ in moved_from.values() for p in paths_]
            if prune and gone:
                run.commit([], [], remove=[states[p].id for p in gone])
                stats.removed += len(gone)
            stale_failures = [
                f.path for f in store.failures() if f.path not in seen and under(f.path, roots)
            ]
            if prune and stale_failures:
                store.clear_failures(stale_failures)
        finally:
            run.save()
        stats.seconds = time.perf_counter() - started
        return stats

    def _decoded(self, work: Sequence[_Work]) -> Iterator[tuple[_Work, DecodedPhoto | DecodeError]]:
        """Decode on a thread pool, in order, with a bounded number of photos in flight."""

        def load(item: _Work) -> DecodedPhoto | DecodeError:
            t = time.perf_counter()
            try:
                return read_photo(
                    item.file.path, max_megapixels=self.max_megapixels, decode_side=self.decode_side
                )
            except DecodeError as exc:
                return exc
            except Exception as exc:  # a decoder bug must not stop the run
                return DecodeError(f"cannot decode: {first_line(exc)}")
            finally:
                self.timings["decode"] += time.perf_counter() - t

        window = max(2 * self.batch_size, 4)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="decode") as pool:
            pending: list[tuple[_Work, Future[DecodedPhoto | DecodeError]]] = []
            it = iter(work)
            for item in it:
                pending.append((item, pool.submit(load, item)))
                if len(pending) >= window:
                    break
            while pending:
                item, fut = pending.pop(0)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(load, nxt)))
                yield item, fut.result()

    # -- per-batch model work --------------------------------------------------------------
    def embed_photos(
        self, photos: Sequence[DecodedPhoto], store: Store | None = None
    ) -> list[NewPhoto]:
        """Detect objects and embed photos + crops (one detector batch, pooled CLIP batches)."""
        embedder = self.embedder if store is None else self._ensure_embedder(store)
        assert embedder is not None
        t = time.perf_counter()
        if self.detect_objects and photos:
            raw = self._ensure_detector(store).detect([p.image for p in photos], self.options)
        else:
            raw = [Detections.empty() for _ in photos]
        self.timings["detect"] += time.perf_counter() - t
        t = time.perf_counter()
        images: list[Image.Image] = []
        kept: list[Detections] = []
        for photo, det in zip(photos, raw, strict=True):
            sx, sy = photo.scale
            det = det.scaled(sx, sy).filtered(self.options, photo.width, photo.height)
            kept.append(det)
            images.append(photo.image)
            for box in det.xyxy:
                images.append(photo.image.crop(crop_box(box, self.options.padding, photo, sx, sy)))
        self.timings["crop"] += time.perf_counter() - t
        t = time.perf_counter()
        vectors = embedder.embed_images(images)
        self.timings["embed"] += time.perf_counter() - t
        out: list[NewPhoto] = []
        row = 0
        for photo, det in zip(photos, kept, strict=True):
            regions = [
                NewRegion(
                    KIND_IMAGE, (0.0, 0.0, float(photo.width), float(photo.height)), vectors[row]
                )
            ]
            row += 1
            for box, conf, label in zip(det.xyxy, det.confidence, det.labels, strict=True):
                regions.append(
                    NewRegion(
                        KIND_OBJECT, tuple(float(v) for v in box), vectors[row], label, float(conf)
                    )
                )
                row += 1
            out.append(
                NewPhoto(
                    path=photo.path,
                    size=photo.size,
                    mtime_ns=photo.mtime_ns,
                    width=photo.width,
                    height=photo.height,
                    content_hash=photo.content_hash,
                    caption=caption(det.labels),
                    regions=regions,
                )
            )
        return out


def crop_box(
    box: np.ndarray, padding: float, photo: DecodedPhoto, sx: float, sy: float
) -> tuple[int, int, int, int]:
    """The decoded-image crop for an original-pixel box, widened by ``padding`` per side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    px, py = (x2 - x1) * padding, (y2 - y1) * padding
    w, h = photo.image.size
    left = int(max(0, (x1 - px) / sx))
    top = int(max(0, (y1 - py) / sy))
    right = int(min(w, np.ceil((x2 + px) / sx)))
    bottom = int(min(h, np.ceil((y2 + py) / sy)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def model_mismatch(meta: dict[str, str], embedder: ClipEmbedder) -> str | None:
    """Why ``embedder`` cannot serve an index with this ``meta``, or None when it can.

    Models are compared by the vectors they give a fixed probe text, not by name, so the same
    weights loaded from a hub id or from a local folder are recognised as one model.
    """
    stored_dim = int(meta.get("embed_dim", 0))
    same = stored_dim == embedder.dim
    if same and meta.get("clip_probe"):
        stored = np.asarray(json.loads(meta["clip_probe"]), dtype=np.float32)
        cosine = float(stored @ embedder.fingerprint()) / max(float(np.linalg.norm(stored)), 1e-12)
        same = cosine >= SAME_MODEL_COSINE
    if same:
        return None
    return (
        f"This index was built with CLIP model {meta.get('clip_model')!r} ({stored_dim}-d), but "
        f"{embedder.model_id!r} ({embedder.dim}-d) was given; their vectors are not comparable. "
        f"Use --clip-model {meta.get('clip_model')} (or the same weights from a local folder), "
        "or build a new index."
    )


def check_model_matches(store: Store, embedder: ClipEmbedder) -> None:
    """Record the model in a new index, or refuse one that differs from the index's."""
    meta = store.meta()
    if "clip_model" not in meta:
        probe = embedder.fingerprint()
        store.set_meta(
            clip_model=embedder.model_id,
            embed_dim=embedder.dim,
            clip_probe=json.dumps(probe.round(6).tolist()),
        )
        return
    problem = model_mismatch(meta, embedder)
    if problem:
        raise StoreError(problem)


def _batches(
    items: Iterable[tuple[_Work, DecodedPhoto | DecodeError]], size: int
) -> Iterator[list[tuple[_Work, DecodedPhoto | DecodeError]]]:
    batch: list[tuple[_Work, DecodedPhoto | DecodeError]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Run:
    """State of one indexing run: the store, the live FAISS index and the counters."""

    def __init__(
        self,
        indexer: Indexer,
        store: Store,
        index: VectorIndex,
        stats: IndexStats,
        states: dict[str, PhotoState],
        moved_from: dict[str, list[str]],
        *,
        fresh: bool,
    ) -> None:
        self.indexer = indexer
        self.store = store
        self.index = index
        self.stats = stats
        self.states = states
        self.moved_from = moved_from
        self.generation = store.generation
        self.rebuild = False
        self.dirty = not fresh  # a rebuilt (not loaded) index must be saved even if unchanged
        self.last_save = time.monotonic()

    def commit(
        self,
        photos: list[NewPhoto],
        failures: list[tuple[str, str, str]],
        *,
        remove: Sequence[int] = (),
        moves: Sequence[tuple[int, str, int, int]] = (),
        touches: Sequence[tuple[int, int, int]] = (),
    ) -> None:
        t = time.perf_counter()
        changes = self.store.commit_batch(
            photos, failures, remove_photo_ids=remove, moves=moves, touches=touches
        )
        self.indexer.timings["store"] += time.perf_counter() - t
        self._follow(changes)
        self.stats.failures += len(failures)
        self.stats.failed.extend((p, r) for p, _, r in failures)

    def _follow(self, changes: BatchChanges) -> None:
        """Mirror a committed batch in the in-memory FAISS index."""
        self.generation = changes.generation
        self.dirty = True
        if self.rebuild:
            return
        if self.index.ntotal == 0 and changes.added_vectors.shape[1] not in (0, self.index.dim):
            self.index = VectorIndex.empty(changes.added_vectors.shape[1], self.index.kind)
        if len(changes.removed_ids) and not self.index.supports_remove:
            self.rebuild = True  # graph indexes cannot delete: rebuild from SQLite at save
            return
        self.index.remove(changes.removed_ids)
        self.index.add(changes.added_ids, changes.added_vectors)

    def process(self, batch: list[tuple[_Work, DecodedPhoto | DecodeError]]) -> None:
        failures: list[tuple[str, str, str]] = []
        touches: list[tuple[int, int, int]] = []
        moves: list[tuple[int, str, int, int]] = []
        to_embed: list[DecodedPhoto] = []
        for work, result in batch:
            if isinstance(result, DecodeError):
                failures.append((work.file.path, "decode", str(result)))
                continue
            prev = work.previous
            if prev and prev.content_hash == result.content_hash:
                touches.append((prev.id, result.size, result.mtime_ns))
                self.stats.unchanged += 1
            elif prev is None and self.moved_from.get(result.content_hash):
                old = self.moved_from[result.content_hash].pop(0)
                moves.append((self.states[old].id, result.path, result.size, result.mtime_ns))
                self.stats.moved += 1
            else:
                to_embed.append(result)
        photos = self._embed(to_embed, failures)
        self.commit(photos, failures, moves=moves, touches=touches)
        self.stats.indexed += len(photos)
        self.stats.objects += sum(len(p.regions) - 1 for p in photos)

    def _embed(
        self, photos: list[DecodedPhoto], failures: list[tuple[str, str, str]]
    ) -> list[NewPhoto]:
        if not photos:
            return []
        try:
            return self.indexer.embed_photos(photos, self.store)
        except ObjsearchError:
            raise  # model loading or model mismatch: stop the run with its message
        except Exception:
            if len(photos) == 1:
                raise
        out: list[NewPhoto] = []
        for photo in photos:  # isolate the photo that broke the batch
            try:
                out += self.indexer.embed_photos([photo], self.store)
            except ObjsearchError:
                raise
            except Exception as exc:
                failures.append(
                    (photo.path, "model", f"model failed on this photo: {first_line(exc)}")
                )
        return out

    def maybe_save(self) -> None:
        if (
            self.dirty
            and not self.rebuild
            and time.monotonic() - self.last_save > self.indexer.save_every
        ):
            self.save(final=False)

    def save(self, final: bool = True) -> None:
        """Persist FAISS for the last committed generation (choosing its type when final)."""
        if not self.dirty and not self.rebuild:
            return
        t = time.perf_counter()
        index = self.index
        if (
            self.rebuild
            or final
            and choose_kind(self.indexer.faiss_index, index.ntotal) != index.kind
        ):
            index = self.store.rebuild_vectors(self.indexer.faiss_index)
        self.store.set_meta(faiss_kind_requested=self.indexer.faiss_index)
        self.store.save_vectors(index, self.generation)
        self.index, self.rebuild, self.dirty = index, False, False
        self.last_save = time.monotonic()
        self.indexer.timings["store"] += time.perf_counter() - t
