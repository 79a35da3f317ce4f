"""The ``watch`` command: keep an index up to date while its folders change (no server)."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, TaskID

from indexer.settings import configure_ultralytics

from .app import BackendOpt, ClipOpt, DeviceOpt, IndexDir, PrecisionOpt, err, friendly, out
from .indexing import _print_failed, _progress_columns

if TYPE_CHECKING:
    from indexer.indexing.watch import WatchBatch, Watcher

# A batch of at least this many photos to run the models on shows a progress bar.
LONG_BATCH = 32

FoldersArg = Annotated[
    list[Path], typer.Argument(help="Folders to watch (recursively).", show_default=False)
]


@friendly
def watch(
    folders: FoldersArg,
    index_dir: IndexDir,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per batch on stdout.")
    ] = False,
) -> None:
    """Watch FOLDERS and index new, changed, moved and deleted photos into INDEX as they happen.

    INDEX must exist (built by 'objsearch index'): photos are added with its models. A
    catch-up run first indexes what changed while nobody watched. Ctrl-C stops between
    commits; everything committed is kept.
    """
    from indexer.indexing.watch import Watcher

    configure_ultralytics()
    bar = _LongBatchBar()
    watcher = Watcher(
        index_dir,
        folders,
        clip_model=clip_model,
        device=device,
        precision=precision,
        backend=backend,
        on_batch=lambda batch: _report(batch, bar, as_json, index_dir),
        on_progress=bar.update,
    )
    err.print(
        f"Watching {escape(', '.join(watcher.folders))} for {escape(watcher.index_dir)}. "
        "Press Ctrl-C to stop.",
        highlight=False,
        soft_wrap=True,
    )
    try:
        with _stop_on_signals(watcher):
            watcher.run()
    finally:
        bar.close()
    err.print("Stopped. Everything committed is kept.")


def _report(batch: WatchBatch, bar: _LongBatchBar, as_json: bool, index_dir: Path) -> None:
    """One line per batch (or one JSON object), after the batch's progress bar is gone."""
    bar.close()
    if as_json:
        print(json.dumps(batch.to_dict(), ensure_ascii=False), flush=True)
        return
    colour = "red" if batch.failed or batch.error else "green"
    out.print(
        f"{time.strftime('%H:%M:%S')} [{colour}]{escape(batch.describe())}[/]",
        highlight=False,
        soft_wrap=True,
    )
    _print_failed(
        batch.failures, "failed", f"see 'objsearch status --index {escape(str(index_dir))}'"
    )


class _LongBatchBar:
    """A progress bar on stderr, shown only while a long batch runs the models."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task = TaskID(0)

    def update(self, done: int, total: int) -> None:
        if self._bar is None:
            if total < LONG_BATCH or not err.is_terminal:
                return
            self._bar = Progress(*_progress_columns(), console=err, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("indexing", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextlib.contextmanager
def _stop_on_signals(watcher: Watcher) -> Iterator[None]:
    """Ctrl-C or SIGTERM stops the watcher at its next commit; a second Ctrl-C at once."""

    def stop(signum: int, _: FrameType | None) -> None:
        if watcher.stop_event.is_set():
            raise KeyboardInterrupt
        err.print("Stopping after the current commit (Ctrl-C again to stop at once)...")
        watcher.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
