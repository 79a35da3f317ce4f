"""The indexing pipeline: files -> regions -> vectors -> store.

:class:`Indexer` plans a run (scan vs store: new, changed, moved, unchanged, deleted),
decodes changed photos on a thread pool while the models work, has
:class:`~indexer.indexing.regions.RegionEmbedder` (on CUDA, its tensor twin in
:mod:`~indexer.indexing.device_regions`) detect and embed batches of photos, and
commits each batch in one SQLite transaction, on a writer thread while the next batch runs
the models (:mod:`.local_stage`). A crash loses at most the two batches in flight; the
next run resumes where the last commit stopped. The run's commits and counters are
:class:`~indexer.indexing.run.IndexRun`'s; an index run writes the store through it alone.

With ``ray`` settings the model stage runs on a Ray cluster instead (see
:mod:`indexer.indexing.ray_stage`): this process still plans the run, settles moved and touched
files itself, and commits the regions the cluster streams back, batch by batch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import ObjsearchError, UsageError
from ..media.decode import DecodedPhoto, DecodeError, FileDigest
from ..models.clip import ClipEmbedder, find_clip_source
from ..models.detector import Detector, find_detector_weights
from ..models.lifecycle import ModelChoice
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
from ..store.records import NewPhoto
from ..store.schema import DB_NAME
from ..store.vectors import INDEX_TYPES
from .device_regions import region_step
from .failures import decode_or_error, digest_or_error
from .local_stage import ProgressFn, run_locally
from .model_check import check_model_matches, record_detector, record_precision
from .plan import Plan, Work, existing_roots, plan_run
from .regions import RegionEmbedder
from .run import IndexRun, IndexStats, batches
from .text_reading import unread_batches, with_text
from .timing import timed

if TYPE_CHECKING:
    from .ray_stage import RayStage
    from .ray_workers import ModelSpec

METADATA_BATCH = 500  # photos per commit when only their metadata is read


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
            raise UsageError(
                f"Unknown FAISS index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}."
            )
        batch_plan("cpu", batch_size, embed_batch_size, workers)  # refuse bad sizes early
        if max_megapixels <= 0:
            raise UsageError(f"the megapixel limit must be above 0, got {max_megapixels}")
        refuse_unrunnable_precision(precision, backend, device)
        ModelChoice(clip_model, device, precision, backend)  # unknown names: refused now
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
    def choice(self) -> ModelChoice:
        """The embedding model as asked for (see :mod:`indexer.models.lifecycle`)."""
        return ModelChoice(self.clip_model, self._device, self.precision, self.backend)

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
        choice = self.choice.with_model(stored)
        clip = str(choice.clip_model)
        need_detector = self.detect_objects and self.detector is None
        if self.embedder is None:
            find_clip_source(clip)
        if need_detector:
            find_detector_weights(self.detector_weights)
        if self.detect_objects:
            self._ensure_detector(store)
        if self.embedder is None:
            self.embedder = choice.embedder(batch_size=self.embed_batch_size)
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
        if store is not None:
            record_detector(store, self.detector.model_id)
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

    def _read_unread(self, run: IndexRun, plan: Plan) -> None:
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
        with timed(self.timings, "scan"):
            plan = plan_run(roots, store.photo_states())
        stats = IndexStats(scanned=plan.scanned, unchanged=plan.unchanged)
        run = IndexRun(
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
        for batch in batches(plan.needs_metadata, METADATA_BATCH, METADATA_BATCH):
            run.commit_metadata(batch)
        total = len(plan.work)
        if progress:
            progress(0, total)
        try:
            if stage is None:
                run_locally(
                    run,
                    plan.work,
                    self._decode,
                    batch_size=self.batch_size,
                    workers=self.workers,
                    progress=progress,
                )
            else:
                self._run_on_ray(stage, store, run, progress)
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
        self, stage: RayStage, store: Store, run: IndexRun, progress: ProgressFn | None
    ) -> None:
        """Settle moves and touches here, run the models on Ray, commit what streams back."""
        from .ray_stage import RaySizes, run_on_ray

        run_on_ray(
            stage,
            run,
            lambda: self._model_spec(store),
            digest=self._digest,
            check_models=lambda model: self._check_remote_models(store, model),
            sizes=RaySizes(self.batch_size, self.max_megapixels, self.decode_side),
            progress=progress,
        )

    def _check_remote_models(self, store: Store, model: bytes) -> None:
        """An actor's models against the index (recorded in a new one), before storing."""
        from .ray_workers import ModelProbe

        probe = ModelProbe.load(model)
        check_model_matches(store, probe.clip)
        record_detector(store, probe.detector_id)

    def _digest(self, item: Work) -> FileDigest | DecodeError:
        with timed(self.timings, "hash"):
            return digest_or_error(item.file.path)

    def _decode(self, item: Work) -> DecodedPhoto | DecodeError:
        with timed(self.timings, "decode"):
            return decode_or_error(
                item.file.path, max_megapixels=self.max_megapixels, decode_side=self.decode_side
            )
