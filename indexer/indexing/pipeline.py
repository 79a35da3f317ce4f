"""The indexing pipeline: files -> regions -> vectors -> store.

:class:`Indexer` plans a run (scan vs store: new, changed, moved, unchanged, deleted),
decodes changed photos on a thread pool while the models work, has
:class:`~indexer.indexing.regions.RegionEmbedder` (on CUDA, its tensor twin in
:mod:`~indexer.indexing.device_regions`) detect and embed batches of photos, and
commits each batch in one SQLite transaction, on a writer thread while the next batch runs
the models. A crash loses at most the two batches in flight; the next run resumes where
the last commit stopped. Only this module writes the store.

With ``ray`` settings the model stage runs on a Ray cluster instead (see
:mod:`indexer.indexing.ray_stage`): this process still plans the run, settles moved and touched
files itself, and commits the regions the cluster streams back, batch by batch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ..errors import ObjsearchError, StoreError, UsageError, first_line
from ..media.decode import (
    DecodedPhoto,
    DecodeError,
    FileDigest,
    read_digest,
    read_file_metadata,
    read_photo,
)
from ..media.scan import under
from ..models.clip import ClipEmbedder, find_clip_source
from ..models.converted import load_embedder
from ..models.detector import Detector, find_detector_weights
from ..models.identity import ModelIdentity, model_mismatch, model_record
from ..models.ocr import TextReader
from ..models.source import canonical_model_id
from ..settings import (
    DEFAULT_DECODE_SIDE,
    DEFAULT_FAISS_INDEX,
    DEFAULT_MAX_MEGAPIXELS,
    ENV_BACKEND,
    ENV_DEVICE,
    ENV_PRECISION,
    BatchPlan,
    DetectOptions,
    RaySettings,
    batch_plan,
    expand_path,
    refuse_unrunnable_precision,
    resolve,
    resolve_clip_model,
    resolve_detector,
    resolve_device,
    resolve_ocr,
)
from ..store.database import Store, check_creatable, remove_temp_files
from ..store.live import compaction_reason
from ..store.records import (
    BatchChanges,
    FailureRecord,
    NewPhoto,
    PhotoMove,
    PhotoText,
    PhotoTouch,
)
from ..store.schema import DB_NAME
from ..store.vectors import INDEX_TYPES, choose_index_type
from .device_regions import region_step
from .plan import Plan, Work, existing_roots, plan_run
from .regions import EmbedFn, RegionEmbedder, embed_isolating
from .text_reading import text_failures, unread_batches, with_text

if TYPE_CHECKING:
    from .ray_stage import RayStage
    from .ray_workers import ModelSpec

ProgressFn = Callable[[int, int], None]
T = TypeVar("T")
METADATA_BATCH = 500  # photos per commit when only their metadata is read

# Photos in a run's first batch (see _batches).
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


class Indexer:
    """Indexes photo files into an index folder (see the module docstring).

    ``embedder`` and ``detector`` let apps and tests inject already-loaded models;
    otherwise they load lazily from ``clip_model``/``detector_weights`` (hub id or local
    path), only when some photo actually needs them, so a no-change re-run loads no model.
    ``detector_classes`` names what an open-vocabulary detector (YOLO-World, YOLOE) finds.
    ``ray`` runs detection and embedding on a Ray cluster (``pip install "objsearch[ray]"``),
    whose actors load the models by name; this process stays the only writer.
    ``ocr`` (else ``OBJSEARCH_OCR``) also reads the text in photos, including photos
    indexed earlier whose text was never read; ``text_reader`` injects a loaded reader.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        clip_model: str | None = None,
        detector_weights: str | None = None,
        device: str | None = None,
        *,
        detector_classes: Sequence[str] | None = None,
        precision: str | None = None,
        backend: str | None = None,
        options: DetectOptions | None = None,
        detect_objects: bool = True,
        batch_size: int | None = None,
        embed_batch_size: int | None = None,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
        decode_side: int | None = DEFAULT_DECODE_SIDE,
        index_type: str = DEFAULT_FAISS_INDEX,
        workers: int | None = None,
        save_every: float = 60.0,
        embedder: ClipEmbedder | None = None,
        detector: Detector | None = None,
        ray: RaySettings | None = None,
        ocr: bool | None = None,
        text_reader: TextReader | None = None,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ObjsearchError(
                f"Unknown FAISS index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}."
            )
        batch_plan("cpu", batch_size, embed_batch_size, workers)  # refuse bad sizes early
        if max_megapixels <= 0:
            raise UsageError(f"the megapixel limit must be above 0, got {max_megapixels}")
        refuse_unrunnable_precision(precision, backend, device)
        self.index_dir = expand_path(index_dir)
        self.clip_model = clip_model
        self.detector_weights = detector_weights
        self.detector_classes = tuple(detector_classes or ())
        self._device = device
        self.precision = precision
        self.backend = backend
        self.options = options or DetectOptions()
        self.detect_objects = detect_objects
        self._sizes = (batch_size, embed_batch_size, workers)
        self.max_megapixels = max_megapixels
        self.decode_side = decode_side
        self.index_type = index_type
        self.save_every = save_every
        self.embedder = embedder
        self.detector = detector
        self.ray = ray
        self.ocr = resolve_ocr(ocr)
        self.text_reader = text_reader
        self.ray_workers: dict[int, int] = {}
        """After a Ray run: the PID of each actor that returned photos -> how many."""
        self.timings: dict[str, float] = defaultdict(float)
        """Seconds per stage (scan, decode, detect, crop, preprocess, embed, store), summed."""
        self.models_started_at: float | None = None
        """Epoch seconds when the first photo of this indexer's runs entered the models."""
        self._checked_store: str | None = None
        self._region_embedder: RegionEmbedder | None = None

    # -- models --------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if not hasattr(self, "_resolved_device"):
            self._resolved_device = resolve_device(self._device)
        return self._resolved_device

    @property
    def sizes(self) -> BatchPlan:
        """Batch sizes and decode threads: the ones asked for, else the device's defaults."""
        if not hasattr(self, "_resolved_sizes"):
            self._resolved_sizes = batch_plan(self.device, *self._sizes)
        return self._resolved_sizes

    @property
    def batch_size(self) -> int:
        return self.sizes.photos

    @property
    def embed_batch_size(self) -> int:
        return self.sizes.embed

    @property
    def workers(self) -> int:
        return self.sizes.decode_workers

    def load_models(self, store: Store | None = None) -> None:
        """Load the models a run needs; both are found first, so neither loads in vain.

        Finding a model only looks at files, caches and the network; loading it reads its
        weights and may convert it for OpenVINO (seconds). A missing detector is reported
        before CLIP is converted, and a missing CLIP before the detector loads. With a
        ``store``, CLIP is also recorded in it or checked against it.
        """
        stored = store.get_meta("clip_model") if store is not None else None
        clip = resolve_clip_model(self.clip_model, stored)
        need_detector = self.detect_objects and self.detector is None
        if self.embedder is None:
            find_clip_source(clip)
        if need_detector:
            find_detector_weights(self.detector_weights)
        if self.detect_objects:
            self._ensure_detector(store)
        if self.embedder is None:
            self.embedder = load_embedder(
                clip,
                self.device,
                precision=self.precision,
                batch_size=self.embed_batch_size,
                backend=self.backend,
            )
        if store is not None and self._checked_store != store.dir:
            check_model_matches(store, self.embedder)
            record_precision(store, self.embedder)
            self._checked_store = store.dir

    def _ensure_detector(self, store: Store | None) -> Detector:
        """Load the detector once and record it in the index."""
        if self.detector is None:
            self.detector = Detector(
                resolve_detector(self.detector_weights),
                self.device,
                backend=self.backend,
                classes=self.detector_classes,
            )
        if store is not None and store.get_meta("detector") != self.detector.model_id:
            store.set_meta(detector=self.detector.model_id)
        return self.detector

    def region_embedder(self, store: Store) -> RegionEmbedder:
        """The detect + crop + embed step with this run's models (loaded and checked).

        Called for every batch: once the models are loaded and recorded in this store, the
        step made for them is reused without reading the store's meta again.
        """
        cached = self._region_embedder
        if cached is None or self._checked_store != store.dir or not self._serves(cached):
            self.load_models(store)
            assert self.embedder is not None
            if cached is None or not self._serves(cached):
                detector = self.detector if self.detect_objects else None
                cached = region_step(self.embedder, detector, self.options, self.timings)
                self._region_embedder = cached
        return cached

    def _serves(self, step: RegionEmbedder) -> bool:
        """Whether ``step`` runs this indexer's current models."""
        detector = self.detector if self.detect_objects else None
        return step.embedder is self.embedder and step.detector is detector

    def _embed(self, store: Store, photos: Sequence[DecodedPhoto]) -> list[NewPhoto]:
        step = self.region_embedder(store)
        if self.models_started_at is None:
            self.models_started_at = time.time()
        if self.ocr:  # text in photos (issue 21): read after the regions, into their records
            return with_text(step.embed, self._reader(), self.timings)(photos)
        return step.embed(photos)

    # -- text in photos (--ocr) ----------------------------------------------------------
    def _reader(self) -> TextReader:
        """The OCR reader, loaded on first use (a run with nothing to read loads none)."""
        if self.text_reader is None:
            self.text_reader = TextReader()
        return self.text_reader.load()

    def _read_unread(self, run: _Run, plan: Plan) -> None:
        """Read the text of the scanned photos stored unread (no other model runs)."""
        failed = {path for path, _ in run.stats.failed}
        for batch in unread_batches(
            run.store,
            self._reader,
            (p for p in plan.seen if p not in failed),
            batch_size=self.batch_size,
            max_megapixels=self.max_megapixels,
            decode_side=self.decode_side,
            timings=self.timings,
        ):
            run.commit([], batch.failures, texts=batch.texts)
            run.stats.read += len(batch.texts)
            run.stats.texts += sum(len(t.lines) for t in batch.texts)

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
        if self.ray is not None:
            from .ray_cluster import import_ray

            import_ray()  # without Ray installed, say how to install it before anything else
        roots, missing = existing_roots(paths)
        if not os.path.exists(os.path.join(self.index_dir, DB_NAME)):
            # A new index: its folder appears only once the models have loaded, so a run
            # that stops on a model leaves nothing behind. (On Ray the actors load them;
            # a model they cannot load stops the run at the first batch.)
            check_creatable(self.index_dir)
            if self.ray is None:
                self.load_models()
        store = Store(self.index_dir, create=True)
        try:
            store.lock()
            remove_temp_files(store.dir)
            stats = self._run(store, roots, prune, progress)
        finally:
            store.close()
        stats.missing_roots = missing
        stats.seconds = time.perf_counter() - started
        return stats

    def _refuse_other_model(self, store: Store, stage: RayStage | None) -> None:
        """Check a different ``clip_model`` against the index before touching anything."""
        requested = canonical_model_id(self.clip_model) if self.clip_model else None
        stored = store.get_meta("clip_model")
        if stage is not None:  # Ray actors load the models; probe them on the cluster
            if stored and requested and requested != stored:
                check_model_matches(store, stage.probe(self._model_spec(store)).clip)
            return
        if (self.embedder is not None and not stored) or (
            stored and requested and requested != stored
        ):
            self.load_models(store)  # also records an already-loaded model in a new index

    def _run(
        self, store: Store, roots: list[str], prune: bool, progress: ProgressFn | None
    ) -> IndexStats:
        stage: RayStage | None = None
        if self.ray is not None:
            from .ray_stage import RayStage

            stage = RayStage(self.ray)  # connects on first use: only if a model must run
        try:
            return self._run_with(store, roots, prune, progress, stage)
        finally:
            if stage is not None:
                self.ray_workers = dict(stage.workers)
                stage.close()

    def _run_with(
        self,
        store: Store,
        roots: list[str],
        prune: bool,
        progress: ProgressFn | None,
        stage: RayStage | None,
    ) -> IndexStats:
        self._refuse_other_model(store, stage)
        t0 = time.perf_counter()
        plan = plan_run(roots, store.photo_states())
        self.timings["scan"] += time.perf_counter() - t0
        stats = IndexStats(scanned=plan.scanned, unchanged=plan.unchanged)
        run = _Run(
            store,
            stats,
            plan,
            embed=lambda photos: self._embed(store, photos),
            timings=self.timings,
            index_type=self.index_type,
            save_every=self.save_every,
        )
        if plan.problems:
            run.commit([], plan.problems)
        for batch in _batches(plan.needs_metadata, METADATA_BATCH, METADATA_BATCH):
            t = time.perf_counter()
            touches = [
                PhotoTouch(
                    w.previous.id,
                    w.file.size,
                    w.file.mtime_ns,
                    read_file_metadata(w.file.path, w.file.mtime_ns),
                )
                for w in batch
                if w.previous is not None
            ]
            self.timings["decode"] += time.perf_counter() - t
            run.commit([], [], touches=touches)
        total = len(plan.work)
        if progress:
            progress(0, total)
        try:
            if stage is None:
                self._run_locally(run, plan, progress)
            else:
                self._run_on_ray(stage, store, run, plan, progress)
            if self.ocr:
                self._read_unread(run, plan)
            if prune:
                run.prune(roots)
            store.clear_stale_failures(keep=(path for path, _ in stats.failed))
        except BaseException:
            # What was committed is searchable already (through the delta); save only
            # what is cheap, and let the first error speak (a full disk would fail the
            # save too, with a less useful message).
            with contextlib.suppress(ObjsearchError, OSError):
                run.save(final=False)
            raise
        run.save()
        return stats

    def _run_locally(self, run: _Run, plan: Plan, progress: ProgressFn | None) -> None:
        """Run the models here; each batch's commit overlaps the next batch's model work.

        One writer thread commits the batches in order, one at a time, so the store sees the
        same sequence of transactions as before. Without it a GPU would wait for every
        SQLite commit.
        """
        total, done = len(plan.work), 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit") as writer:
            pending: tuple[Future[None], int] | None = None

            def committed() -> None:
                """Wait for the commit in flight; progress counts committed photos only."""
                nonlocal done
                if pending is None:
                    return
                future, size = pending
                future.result()  # a commit's error stops the run here
                done += size
                if progress:
                    progress(done, total)

            for batch in _batches(self._decoded(plan.work), self.batch_size):
                staged = run.embed_batch(batch)
                committed()
                pending = (writer.submit(run.commit_staged, staged), len(batch))
            committed()

    def _model_spec(self, store: Store) -> ModelSpec:
        """The models Ray actors load: names and choices resolved here, devices on each node."""
        from .ray_workers import ModelSpec

        return ModelSpec(
            clip_model=resolve_clip_model(self.clip_model, store.get_meta("clip_model")),
            detector=resolve_detector(self.detector_weights) if self.detect_objects else None,
            device=resolve(self._device, ENV_DEVICE, None),
            precision=resolve(self.precision, ENV_PRECISION, None),
            backend=resolve(self.backend, ENV_BACKEND, None),
            options=self.options,
            embed_batch_size=self.embed_batch_size,
            detector_classes=self.detector_classes,
            ocr=self.ocr,
        )

    def _run_on_ray(
        self,
        stage: RayStage,
        store: Store,
        run: _Run,
        plan: Plan,
        progress: ProgressFn | None,
    ) -> None:
        """Settle what needs no model here, send the rest to Ray, commit what streams back.

        Files whose bytes may already be indexed (changed files, and new files while some
        indexed files are missing) are hashed here first, so moves and touches never reach
        the cluster; everything else goes straight to Ray.
        """
        total, done = len(plan.work), 0
        maybe_known = [w for w in plan.work if w.previous is not None or plan.moved_from]
        rest = [w for w in plan.work if not (w.previous is not None or plan.moved_from)]
        need: list[Work] = []
        digests = ((w, self._digest(w)) for w in maybe_known)
        for batch in _batches(digests, self.batch_size):
            left = run.settle(batch)
            need += left
            done += len(batch) - len(left)
            if progress:
                progress(done, total)
        need += rest
        if not need:
            return
        checked: set[bytes] = set()
        spec = self._model_spec(store)
        for outcomes in stage.stream(
            [w.file.path for w in need],
            spec,
            batch_size=self.batch_size,
            max_megapixels=self.max_megapixels,
            decode_side=self.decode_side,
        ):
            for model in {o.model for o in outcomes if o.model} - checked:
                self._check_remote_models(store, model)
                checked.add(model)
            run.add(
                [o.record for o in outcomes if o.record is not None],
                [o.failure for o in outcomes if o.failure is not None],
            )
            done += len(outcomes)
            if progress:
                progress(done, total)
            run.maybe_save()

    def _check_remote_models(self, store: Store, model: bytes) -> None:
        """An actor's models against the index (recorded in a new one), before storing."""
        from .ray_workers import ModelProbe

        probe = ModelProbe.load(model)
        check_model_matches(store, probe.clip)
        if probe.detector_id and store.get_meta("detector") != probe.detector_id:
            store.set_meta(detector=probe.detector_id)

    def _digest(self, item: Work) -> FileDigest | DecodeError:
        t = time.perf_counter()
        try:
            return read_digest(item.file.path)
        except DecodeError as exc:
            return exc
        finally:
            self.timings["hash"] += time.perf_counter() - t

    def _decoded(self, work: Sequence[Work]) -> Iterator[tuple[Work, DecodedPhoto | DecodeError]]:
        """Decode on a thread pool, in order, with a bounded number of photos in flight."""

        def load(item: Work) -> DecodedPhoto | DecodeError:
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
            pending: list[tuple[Work, Future[DecodedPhoto | DecodeError]]] = []
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


def record_precision(store: Store, embedder: ClipEmbedder) -> None:
    """Record the precision of the latest run's vectors, and for int8 the calibration that
    names its quantized tower (a search then finds it without the calibration photos)."""
    changes: dict[str, object] = {}
    if store.get_meta("precision") != embedder.precision:
        changes["precision"] = embedder.precision
    key = getattr(embedder, "calibration_key", None)
    if key and store.get_meta("int8_calibration") != key:
        changes["int8_calibration"] = key
    if changes:
        store.set_meta(**changes)


def check_model_matches(store: Store, model: ClipEmbedder | ModelIdentity) -> None:
    """Record the model in a new index, or refuse one that differs from the index's."""
    meta = store.meta()
    identity = model if isinstance(model, ModelIdentity) else ModelIdentity.of(model)
    if "clip_model" not in meta:
        store.set_meta(**model_record(identity))
        return
    problem = model_mismatch(meta, identity)
    if problem:
        raise StoreError(problem)


def _batches(items: Iterable[T], size: int, first: int = FIRST_BATCH) -> Iterator[list[T]]:
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
class _Staged:
    """A batch whose models have run, waiting for its commit."""

    photos: list[NewPhoto]
    failures: list[FailureRecord]
    moves: list[PhotoMove]
    touches: list[PhotoTouch]


class _Run:
    """State of one indexing run: the store, the counters, and when FAISS was last saved.

    The run never holds the vectors: each commit leaves SQLite searchable as it is (new
    regions form the delta, deleted ones are tombstones; see :mod:`indexer.store.live`),
    and saving rebuilds the FAISS main segment only when the changes call for it.
    """

    def __init__(
        self,
        store: Store,
        stats: IndexStats,
        plan: Plan,
        *,
        embed: EmbedFn,
        timings: dict[str, float],
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
        t = time.perf_counter()
        changes = self.store.commit_batch(
            photos, failures, remove_photo_ids=remove, moves=moves, touches=touches, texts=texts
        )
        self.timings["store"] += time.perf_counter() - t
        self._follow(changes)
        self.stats.failures += len(failures)
        self.stats.failed.extend((f.path, f.reason) for f in failures)

    def _follow(self, changes: BatchChanges) -> None:
        """Note a committed batch: readers see it through the delta and tombstones."""
        self.generation = changes.generation
        self.dirty = True

    def _sort(
        self, batch: Sequence[tuple[Work, DecodedPhoto | FileDigest | DecodeError]]
    ) -> tuple[list[FailureRecord], list[PhotoTouch], list[PhotoMove], list[int]]:
        """Split a batch: failures, touches, moves, and the positions still needing models.

        A touch is a known path whose bytes did not change; a move is known bytes under a
        new path. Neither needs a model, locally or on Ray.
        """
        failures: list[FailureRecord] = []
        touches: list[PhotoTouch] = []
        moves: list[PhotoMove] = []
        rest: list[int] = []
        moved_from = self.plan.moved_from
        for i, (work, result) in enumerate(batch):
            if isinstance(result, DecodeError):
                failures.append(FailureRecord(work.file.path, "decode", str(result)))
                continue
            prev = work.previous
            if prev and prev.content_hash == result.content_hash:
                touches.append(PhotoTouch(prev.id, result.size, result.mtime_ns, result.metadata))
                self.stats.unchanged += 1
            elif prev is None and moved_from.get(result.content_hash):
                old = self.plan.states[moved_from[result.content_hash].pop(0)]
                moves.append(
                    PhotoMove(old.id, result.path, result.size, result.mtime_ns, result.metadata)
                )
                self.stats.moved += 1
            else:
                rest.append(i)
        return failures, touches, moves, rest

    def embed_batch(self, batch: list[tuple[Work, DecodedPhoto | DecodeError]]) -> _Staged:
        """Sort a decoded batch into failures, touches, moves and photos, and embed those."""
        failures, touches, moves, rest = self._sort(batch)
        to_embed = [p for i in rest if isinstance(p := batch[i][1], DecodedPhoto)]
        photos, failed = embed_isolating(self.embed, to_embed)
        return _Staged(photos, failures + failed, moves, touches)

    def commit_staged(self, staged: _Staged) -> None:
        """Commit an embedded batch in one transaction, then save FAISS if it is time."""
        self.add(staged.photos, staged.failures, moves=staged.moves, touches=staged.touches)
        self.maybe_save()

    def settle(self, batch: list[tuple[Work, FileDigest | DecodeError]]) -> list[Work]:
        """Commit the failures, touches and moves of hashed files; return the rest."""
        failures, touches, moves, rest = self._sort(batch)
        if failures or touches or moves:
            self.commit([], failures, moves=moves, touches=touches)
        return [batch[i][0] for i in rest]

    def add(
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

    def maybe_save(self) -> None:
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
        t = time.perf_counter()
        status = self.store.vector_status()
        target = choose_index_type(self.index_type, status.regions)
        reason = compaction_reason(status, target, final=final)
        if reason is not None:
            self.store.set_meta(faiss_kind_requested=self.index_type)
            self.store.compact_vectors(target)
        self.dirty = not final and reason is None
        self.last_save = time.monotonic()
        self.timings["faiss"] += time.perf_counter() - t
