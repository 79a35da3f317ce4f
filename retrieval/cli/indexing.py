"""Commands that build and look after an index: index, export, status, doctor."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from indexer.errors import UsageError
from indexer.settings import (
    DEFAULT_FAISS_INDEX,
    DEFAULT_MAX_MEGAPIXELS,
    DetectOptions,
    RaySettings,
    configure_ultralytics,
    expand_path,
    resolve_ray_address,
)

from .app import (
    AfterOpt,
    BackendOpt,
    BeforeOpt,
    CameraOpt,
    ClipOpt,
    DeviceOpt,
    IndexDir,
    InOpt,
    JsonOpt,
    LabelOpt,
    MatchOpt,
    NearOpt,
    PrecisionOpt,
    err,
    friendly,
    out,
    print_rows,
)
from .index_options import (
    DETECT,
    BatchSizeOpt,
    ConfidenceOpt,
    DetectorClassesOpt,
    DetectorImgszOpt,
    DetectorOpt,
    FaissIndexOpt,
    MaxMegapixelsOpt,
    MaxObjectsOpt,
    MinSideOpt,
    OcrIndexOpt,
    PaddingOpt,
    PhotosOnlyOpt,
    PhotosOpt,
    PruneOpt,
    RayActorsOpt,
    RayCpusOpt,
    RayGpusOpt,
    RayOpt,
)

if TYPE_CHECKING:
    from indexer.indexing import Indexer, IndexStats
    from indexer.store import Store
    from retrieval.search.filters import SearchFilters


def _progress_columns() -> tuple[ProgressColumn, ...]:
    return (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("photos"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


@friendly
def index(
    photos: PhotosOpt,
    index_dir: IndexDir,
    clip_model: ClipOpt = None,
    detector: DetectorOpt = None,
    detector_classes: DetectorClassesOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    confidence: ConfidenceOpt = DETECT.confidence,
    max_objects: MaxObjectsOpt = DETECT.max_objects,
    min_side: MinSideOpt = DETECT.min_side,
    padding: PaddingOpt = DETECT.padding,
    detector_imgsz: DetectorImgszOpt = DETECT.imgsz,
    photos_only: PhotosOnlyOpt = False,
    batch_size: BatchSizeOpt = None,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    faiss_index: FaissIndexOpt = DEFAULT_FAISS_INDEX,
    prune: PruneOpt = True,
    ray: RayOpt = None,
    ray_actors: RayActorsOpt = None,
    ray_gpus: RayGpusOpt = None,
    ray_cpus: RayCpusOpt = None,
    ocr: OcrIndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index photos: detect objects, embed photos and crops, store them in INDEX."""
    from indexer.indexing import Indexer

    configure_ultralytics()
    options = DetectOptions(confidence, max_objects, min_side, padding, imgsz=detector_imgsz)
    indexer = Indexer(
        index_dir,
        clip_model=clip_model,
        detector_weights=detector,
        device=device,
        detector_classes=(detector_classes or "").split(","),
        precision=precision,
        backend=backend,
        options=options,
        detect_objects=not photos_only,
        batch_size=batch_size,
        max_megapixels=max_megapixels,
        index_type=faiss_index,
        ray=_ray_settings(ray, ray_actors, ray_cpus, ray_gpus),
        ocr=ocr,
    )
    stats = _index_with_progress(indexer, photos, prune)
    for path in stats.missing_roots:
        err.print(
            f"[yellow]warning:[/] {escape(path)}: no such file or folder (skipped)",
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        timing = {
            "stage_seconds": {k: round(v, 3) for k, v in indexer.timings.items()},
            "models_started_at": indexer.models_started_at,
        }
        print(json.dumps(stats.to_dict() | timing))
        return
    _print_stats(stats, index_dir)


def _ray_settings(
    ray: str | None, actors: int | None, cpus: float | None, gpus: float | None
) -> RaySettings | None:
    """Where and how the model stage runs on Ray; None runs it in this process."""
    address = resolve_ray_address(ray)
    if address is None:
        return None
    return RaySettings(address=address, actors=actors, cpus_per_actor=cpus, gpus_per_actor=gpus)


def _index_with_progress(indexer: Indexer, photos: list[Path], prune: bool) -> IndexStats:
    """Run the index with a progress bar on stderr (when it is a terminal)."""
    with Progress(
        *_progress_columns(), console=err, transient=False, disable=not err.is_terminal
    ) as bar:
        task = bar.add_task("indexing", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return indexer.index(photos, prune=prune, progress=progress)


def _print_stats(stats: IndexStats, index_dir: Path) -> None:
    out.print(
        f"[bold]{stats.indexed}[/] photos indexed, [bold]{stats.objects}[/] objects, "
        f"{stats.unchanged} unchanged, {stats.moved} moved, {stats.removed} removed, "
        + (f"{stats.texts} text lines in {stats.read} photos read, " if stats.read else "")
        + f"[{'red' if stats.failures else 'green'}]{stats.failures} failures[/] "
        f"in {stats.seconds:.1f} s"
        + (f" ({stats.photos_per_second:.1f} photos/s)" if stats.indexed else ""),
        highlight=False,
    )
    _print_failed(
        stats.failed, "skipped", f"see 'objsearch status --index {escape(str(index_dir))}'"
    )


def _print_failed(failed: list[tuple[str, str]], verb: str, more: str) -> None:
    """The first ten failures, one line each, then how many more and where to find them."""
    for path, reason in failed[:10]:
        out.print(
            f"  [red]{verb}[/] {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True
        )
    if len(failed) > 10:
        out.print(f"  ... and {len(failed) - 10} more: {more}")


@friendly
def export(
    index_dir: IndexDir,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    xmp: Annotated[
        bool,
        typer.Option(
            "--xmp",
            help="Write an XMP sidecar beside each photo (keywords, caption, image regions) for photo-management apps, merged into any sidecar already there.",
        ),
    ] = False,
    xmp_name: Annotated[
        str,
        typer.Option(
            "--xmp-name",
            help="Sidecar names: append (photo.jpg.xmp: darktable, digiKam) or replace (photo.xmp: Lightroom raw files).",
        ),
    ] = "append",
    remove: Annotated[
        bool,
        typer.Option(
            "--remove",
            help="With --xmp: take objsearch's entries out of the sidecars again (the user's stay).",
        ),
    ] = False,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    folders: InOpt = None,
    labels: LabelOpt = None,
    camera: CameraOpt = None,
    near: NearOpt = None,
    match: MatchOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export INDEX: JSON Lines (one line per photo), or XMP sidecars beside the photos (--xmp)."""
    from indexer.store import Store
    from retrieval.export import export_jsonl
    from retrieval.search.filters import SearchFilters

    if remove and not xmp:
        raise UsageError("--remove takes objsearch's entries out of XMP sidecars: add --xmp.")
    if xmp and output is not None:
        raise UsageError("--xmp writes sidecars beside the photos; --output is for JSON Lines.")
    filters = SearchFilters(
        after=after,
        before=before,
        folders=folders,
        labels=labels,
        camera=camera,
        near=near,
        match=match,
    )
    with Store(index_dir) as store:
        if xmp:
            _export_xmp(store, filters, xmp_name, remove, as_json)
            return
        if output is None:
            export_jsonl(store, sys.stdout, filters)
            return
        output = Path(expand_path(output))
        tmp = output.with_name(output.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            count = export_jsonl(store, fh, filters)
        os.replace(tmp, output)
    err.print(f"Exported {count} photos to {escape(str(output))}")


def _export_xmp(
    store: Store, filters: SearchFilters, naming: str, remove: bool, as_json: bool
) -> None:
    from retrieval.xmp import export_sidecars

    with Progress(
        *_progress_columns(), console=err, transient=False, disable=not err.is_terminal
    ) as bar:
        task = bar.add_task("removing" if remove else "sidecars", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = export_sidecars(
            store, filters=filters, naming=naming, remove=remove, progress=progress
        )
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    removed = f"{summary.removed} removed, " if remove else ""
    out.print(
        f"[bold]{summary.written}[/] sidecars written, {summary.updated} updated, {removed}"
        f"{summary.unchanged} unchanged, "
        f"[{'red' if summary.failures else 'green'}]{summary.failures} failed[/] "
        f"in {summary.seconds:.1f} s ({summary.per_second:.0f} photos/s)",
        highlight=False,
    )
    _print_failed(summary.failed, "failed", "--json lists them all")


@friendly
def status(index_dir: IndexDir, as_json: JsonOpt = False) -> None:
    """Report INDEX: counts, models, failures, whether SQLite is consistent, the FAISS file."""
    from indexer.store import Store
    from indexer.store.doctor import check

    with Store(index_dir) as store:
        health = check(store)
    if as_json:
        print(json.dumps(health.to_dict(), ensure_ascii=False))
        return
    vectors_file = health.vectors_file + (
        f": {health.vectors_detail}" if health.vectors_detail else ""
    )
    if health.vectors_pending:
        vectors_file += (
            f" ({health.vectors_pending} vectors added or deleted since it was built, "
            "searched apart until the next rebuild; 'objsearch doctor' rebuilds it now)"
        )
    if health.drifted:
        vectors_file += (
            f"; the newest vectors quantize {health.quantizer_drift:.2f}x worse than at "
            "training: 'objsearch doctor' retrains it"
        )
    model = (
        f"{health.clip_model or '-'} ({health.model_family or '?'}, {health.embed_dim or '?'}-d)"
    )
    rows = [
        ["photos", str(health.photos)],
        ["object regions", str(health.objects)],
        ["whole-photo regions", str(health.images)],
        ["text lines", f"{health.texts} (in {health.read} photos read)"],
        ["FAISS vectors", f"{health.vectors} ({health.faiss_kind or 'none'})"],
        ["FAISS file", vectors_file],
        ["failures", str(health.failures)],
        ["Embedding model", model],
        ["detector", health.detector or "-"],
        ["consistent", "yes" if health.consistent else "no"],
    ]
    print_rows(f"objsearch index {health.index}", None, rows)
    for problem in health.problems:
        out.print(f"[red]problem:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if health.problems:
        out.print(f"Run 'objsearch doctor --index {escape(str(index_dir))}' to repair.")
    for f in health.failed[:20]:
        out.print(
            f"[yellow]failed[/] {escape(f['path'])}: {escape(f['reason'])}",
            highlight=False,
            soft_wrap=True,
        )
    if health.failures > 20:
        out.print(f"... and {health.failures - 20} more (--json lists them all)")


@friendly
def doctor(index_dir: IndexDir) -> None:
    """Repair INDEX: salvage a damaged database, drop orphans, rebuild FAISS."""
    from indexer.store.doctor import repair

    actions = repair(os.fspath(index_dir))
    if not actions:
        out.print("[green]The index is consistent; nothing to repair.[/]")
    for action in actions:
        out.print(f"- {escape(action)}", highlight=False)
