"""Keep an index up to date while folders change: the watcher of ``objsearch watch`` and
``objsearch serve --watch``.

A :class:`Watcher` loads its models once, runs one catch-up index of the folders (what
changed while nobody watched), then follows the folders' file events (watchfiles: inotify,
FSEvents or ReadDirectoryChangesW) and indexes each batch that
:class:`~indexer.indexing.changes.ChangeBatcher` hands over with one ordinary run of
:class:`~indexer.indexing.pipeline.Indexer`. So every change goes through the one writer:
its lock, its batches (each a transaction), its move detection (a moved photo keeps its
regions) and its per-file failures. A stop request ends the run at its next commit; a
killed process loses only the batch in flight, which the next catch-up redoes.

The index's own records choose the models (see :func:`recorded_indexer`), so a watcher
adds photos the way the index was built.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import IndexLockedError, ObjsearchError, UsageError, first_line
from ..settings import (
    DEFAULT_FAISS_INDEX,
    WATCH_MAX_WAIT_S,
    WATCH_QUIET_S,
    expand_path,
    resolve_clip_model,
    resolve_detector,
)
from ..store.database import Store
from ..store.records import PhotoState
from ..store.schema import DB_NAME
from .changes import ChangeBatcher, batch_roots
from .local_stage import ProgressFn
from .model_check import check_model_matches
from .pipeline import Indexer
from .run import IndexStats

log = logging.getLogger("objsearch.watch")

TICK_MS = 200  # the longest the event loop sleeps: how soon a stop or a quiet period is seen
LOCKED_RETRY_S = 2.0  # another process holds the writer lock: try again after this


class WatchStopped(Exception):
    """Raised between two commits of a run when the watcher is asked to stop."""


@dataclass
class WatchBatch:
    """One index run of the watcher: what it changed in the index."""

    at: str
    """When it ended (ISO 8601, UTC)."""
    catch_up: bool
    """The run at the start, over the whole folders (what changed while nobody watched)."""
    added: int = 0
    """Photos indexed under a path the index did not hold."""
    changed: int = 0
    """Stored photos whose bytes changed, indexed again."""
    moved: int = 0
    """Known bytes under a new path: the photo and its regions kept, only the path changed."""
    deleted: int = 0
    """Photos gone from the folders, taken out of the index."""
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of each file that failed, as ``objsearch status`` lists them."""
    error: str | None = None
    """Why the run stopped early (it kept what it committed), else None."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(self.seconds, 3)}

    def describe(self) -> str:
        """The batch in one line, as ``objsearch watch`` prints and ``serve`` logs it."""
        what = "catch-up" if self.catch_up else "batch"
        line = (
            f"{what}: {self.added} added, {self.changed} changed, {self.moved} moved, "
            f"{self.deleted} deleted, {self.failed} failed in {self.seconds:.1f} s"
        )
        return line + (f" (stopped: {self.error})" if self.error else "")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_folders(folders: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The watched folders, absolute; a missing one or a file is a usage error."""
    if not folders:
        raise UsageError("Name at least one folder to watch.")
    checked = []
    for folder in folders:
        path = expand_path(folder)
        if not os.path.isdir(path):
            problem = "is a file, not a folder" if os.path.exists(path) else "no such folder"
            raise UsageError(f"Cannot watch {folder}: {problem}.")
        checked.append(path)
    return checked


def check_index(index_dir: str | os.PathLike[str]) -> str:
    """The index folder, which must hold an index already (its records choose the models)."""
    path = expand_path(index_dir)
    if not os.path.isfile(os.path.join(path, DB_NAME)):
        raise UsageError(
            f"No objsearch index at {path}: build one first with "
            f"'objsearch index PHOTOS_DIR --index {path}', then watch its folders."
        )
    return path


def recorded_indexer(
    index_dir: str,
    *,
    clip_model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
) -> Indexer:
    """An Indexer with the index's own choices, resolved as every index run resolves them.

    The embedding model and the detector are the ones the index recorded (unless given
    or set in the environment; settings decide), an index built with ``--photos-only``
    (a model recorded, no detector) stays without objects, one whose text was read
    (``--ocr``) keeps reading it, and the FAISS type asked for stays.
    """
    with Store(index_dir) as store:
        meta = store.meta()
        read = store.counts().read
    photos_only = "clip_model" in meta and "detector" not in meta
    return Indexer(
        index_dir,
        clip_model=resolve_clip_model(clip_model, meta.get("clip_model")),
        detector_weights=None if photos_only else resolve_detector(None, meta.get("detector")),
        device=device,
        precision=precision,
        backend=backend,
        detect_objects=not photos_only,
        index_type=meta.get("faiss_kind_requested") or DEFAULT_FAISS_INDEX,
        ocr=True if read else None,
    )


class Watcher:
    """Indexes what changes in ``folders`` into ``index_dir`` until :meth:`stop`.

    ``indexer`` injects one (tests, apps holding loaded models); otherwise it is built
    from the index's records. ``on_batch`` hears each finished run, ``on_progress`` the
    photos committed in the run in progress (done, total). :meth:`snapshot` is safe to
    call from any thread.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        folders: Sequence[str | os.PathLike[str]],
        *,
        indexer: Indexer | None = None,
        clip_model: str | None = None,
        device: str | None = None,
        precision: str | None = None,
        backend: str | None = None,
        quiet_s: float = WATCH_QUIET_S,
        max_wait_s: float = WATCH_MAX_WAIT_S,
        on_batch: Callable[[WatchBatch], None] | None = None,
        on_progress: ProgressFn | None = None,
    ) -> None:
        self.folders = check_folders(folders)
        self.index_dir = check_index(index_dir)
        self.indexer = indexer or recorded_indexer(
            self.index_dir,
            clip_model=clip_model,
            device=device,
            precision=precision,
            backend=backend,
        )
        self.batcher = ChangeBatcher(
            self.folders, ignore=[self.index_dir], quiet_s=quiet_s, max_wait_s=max_wait_s
        )
        self.on_batch = on_batch
        self.on_progress = on_progress
        self.batches: list[WatchBatch] = []
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {
            "folders": list(self.folders),
            "state": "idle",
            "done": 0,
            "total": 0,
            "pending": 0,
            "last_batch_at": None,
            "last_error": None,
        }
        self._retry_at = 0.0

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The watcher's progress, as ``GET /api/v1/status`` shows it under ``watch``."""
        with self._lock:
            return dict(self._state, folders=list(self._state["folders"]))

    def _set(self, **values: Any) -> None:
        with self._lock:
            self._state.update(values)

    def note_error(self, message: str) -> None:
        """Show ``message`` as the last error (a host that runs :meth:`run` reports its end)."""
        self._set(last_error=message)

    def stop(self) -> None:
        """Ask the watcher to stop: it does at the next commit or event tick."""
        self.stop_event.set()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Load the models, catch up, then index changes until :meth:`stop`.

        Errors of a batch are recorded (``last_error``) and the watcher goes on; only a
        model that cannot load, or one that differs from the index's, ends it here.
        """
        from watchfiles import watch

        self._set(state="indexing")
        try:
            self._load_models()
            events = watch(
                *self.folders,
                watch_filter=None,
                debounce=TICK_MS + 100,
                step=50,
                rust_timeout=TICK_MS,
                yield_on_timeout=True,
                stop_event=self.stop_event,
                ignore_permission_denied=True,
            )
            first = self._start_watching(events)
            self._index(self.folders, catch_up=True)
            self._set(state="idle")
            self._note(first)
            for changes in events:
                self._note(changes)
        finally:
            self._set(state="idle")

    def _start_watching(self, events: Iterator[set[tuple[Any, str]]]) -> set[tuple[Any, str]]:
        """Start the file events (the first tick), then learn the folders there are.

        From here on nothing is missed: what changes during the catch-up waits as events.
        """
        try:
            first = next(events, set())
        except OSError as exc:  # e.g. Linux's inotify watch limit
            raise ObjsearchError(
                f"Cannot watch {', '.join(self.folders)}: {exc}. On Linux, a large tree may "
                "need a higher fs.inotify.max_user_watches (sysctl)."
            ) from None
        self.batcher.start()
        return first

    def _note(self, changes: set[tuple[Any, str]]) -> None:
        """Add a tick's events to the batcher, and index a batch when one is due."""
        from watchfiles import Change

        now = time.monotonic()
        for change, path in changes:
            self.batcher.add(path, now, modified=change == Change.modified)
        due = not self.stop_event.is_set() and now >= self._retry_at
        paths = self.batcher.take(now) if due else []
        self._set(pending=self.batcher.pending)  # a batch taken is no longer waiting
        if paths:
            self._index(paths, catch_up=False)

    def _load_models(self) -> None:
        """Load the models once for the watcher's lifetime; refuse a model not the index's."""
        self.indexer.load_models()
        with Store(self.index_dir) as store:
            if store.get_meta("clip_model") and self.indexer.embedder is not None:
                check_model_matches(store, self.indexer.embedder)

    # -- one run -------------------------------------------------------------------------
    def _index(self, paths: Sequence[str], *, catch_up: bool) -> None:
        roots, missing = (paths, []) if catch_up else batch_roots(paths, self.folders)
        gone = f"watched folder missing: {', '.join(missing)}" if missing else None
        if not roots:
            self._set(last_error=gone)
            return
        files = None if catch_up else [p for p in paths if os.path.isfile(p)]
        started = time.perf_counter()
        self._set(state="indexing", done=0, total=0)
        batch = WatchBatch(at="", catch_up=catch_up)
        try:
            before = self._states(files)
            stats = self.indexer.index(roots, prune=True, progress=self._progress)
            self._count(batch, stats, before, self._states(files))
        except WatchStopped:
            batch.error = "asked to stop; what was committed is kept"
        except IndexLockedError as exc:
            self._wait_for_lock(paths, exc)
            return
        except (ObjsearchError, OSError) as exc:
            batch.error = first_line(exc)
        except Exception as exc:  # a bug must not end a long-running watcher
            log.exception("watch batch failed")
            batch.error = f"unexpected error: {first_line(exc)}"
        finally:
            self._set(state="idle", pending=self.batcher.pending)
        batch.at, batch.seconds = now_iso(), time.perf_counter() - started
        self._finish(batch, gone)

    def _states(self, files: Sequence[str] | None) -> dict[str, PhotoState]:
        """The stored states of ``files`` (None: of every photo)."""
        if files is not None and not files:
            return {}
        with Store(self.index_dir) as store:
            return store.photo_states(files)

    @staticmethod
    def _count(
        batch: WatchBatch,
        stats: IndexStats,
        before: dict[str, PhotoState],
        after: dict[str, PhotoState],
    ) -> None:
        """Fill ``batch`` from a run's stats; a stored path whose bytes changed is changed."""
        changed = sum(
            1 for p, s in before.items() if p in after and after[p].content_hash != s.content_hash
        )
        batch.changed = min(changed, stats.indexed)
        batch.added = stats.indexed - batch.changed
        batch.moved, batch.deleted = stats.moved, stats.removed
        batch.failed, batch.failures = stats.failures, list(stats.failed)

    def _progress(self, done: int, total: int) -> None:
        self._set(done=done, total=total)
        if self.on_progress is not None:
            self.on_progress(done, total)
        if self.stop_event.is_set():
            raise WatchStopped

    def _wait_for_lock(self, paths: Sequence[str], exc: IndexLockedError) -> None:
        """Another writer holds the index: keep the paths and try again a little later."""
        now = time.monotonic()
        for path in paths:
            self.batcher.add(path, now)
        self._retry_at = now + LOCKED_RETRY_S
        self._set(last_error=str(exc), pending=self.batcher.pending)

    def _finish(self, batch: WatchBatch, gone: str | None) -> None:
        failed = (
            f"{batch.failed} failed, e.g. {batch.failures[0][0]}: {batch.failures[0][1]}"
            if batch.failures
            else None
        )
        self.batches.append(batch)
        self._set(last_batch_at=batch.at, last_error=batch.error or failed or gone)
        if self.on_batch is not None:
            self.on_batch(batch)
