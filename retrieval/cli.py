"""The ``objsearch`` command line: index, search, export, status, doctor, localize, serve.

Human output goes to the terminal (tables, a progress bar on stderr); ``--json`` prints
machine-readable output on stdout only. Every error a user can cause ends in one clear
message and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from indexer.config import (
    ENV_CLIP_MODEL,
    ENV_DETECTOR,
    ENV_DEVICE,
    ENV_PRECISION,
    configure_ultralytics,
)
from indexer.errors import ObjsearchError

app = typer.Typer(
    name="objsearch",
    help="Find objects inside your photos: index a folder, then search it by text or by example.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

IndexDir = Annotated[
    Path,
    typer.Option(
        "--index",
        "-i",
        envvar="OBJSEARCH_INDEX",
        help="Index folder (SQLite + FAISS files).",
        show_default=False,
    ),
]
ClipOpt = Annotated[
    str | None,
    typer.Option(
        "--clip-model",
        envvar=ENV_CLIP_MODEL,
        help="CLIP model: Hugging Face id or local folder. [default: the index's model, else openai/clip-vit-base-patch32]",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", envvar=ENV_DEVICE, help="auto, cpu or cuda. [default: auto]"),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        envvar=ENV_PRECISION,
        help="auto, fp32, bf16 or fp16 for CLIP. [default: auto]",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        envvar="OBJSEARCH_BACKEND",
        help="auto, torch or openvino (faster on CPU; models are converted once and cached). [default: auto]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]


def friendly(fn: F) -> F:
    """Turn objsearch errors and Ctrl-C into one clear message and an exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ObjsearchError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print(
                "[yellow]Interrupted.[/] Everything committed so far is kept; run the same command again to resume."
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _fmt_box(box: Any) -> str:
    if box is None:
        return "whole photo"
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


def _save_image(image: Any, path: Path) -> None:
    """Save a drawing; fast PNG compression (these are large, short-lived pictures)."""
    from indexer.errors import QueryError

    try:
        image.save(path, compress_level=1) if path.suffix.lower() == ".png" else image.save(path)
    except (OSError, ValueError, KeyError) as exc:
        raise QueryError(f"Cannot write {path}: {exc}") from None


@app.command()
@friendly
def index(
    photos: Annotated[
        list[Path],
        typer.Argument(help="Photo folders (walked recursively) or files.", show_default=False),
    ],
    index_dir: IndexDir,
    clip_model: ClipOpt = None,
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            envvar=ENV_DETECTOR,
            help="Ultralytics detector weights: a local .pt path or a name such as yolo11n.pt. [default: yolo11n.pt]",
        ),
    ] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    confidence: Annotated[float, typer.Option(help="Detector confidence threshold.")] = 0.25,
    max_objects: Annotated[int, typer.Option(help="Maximum objects kept per photo.")] = 20,
    min_side: Annotated[
        int, typer.Option(help="Minimum object box side, in original pixels.")
    ] = 24,
    padding: Annotated[
        float, typer.Option(help="Context added around each crop, as a fraction of the box size.")
    ] = 0.1,
    photos_only: Annotated[
        bool, typer.Option("--photos-only", help="Skip detection: embed whole photos only.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Photos per detector batch and per commit.")] = 16,
    max_megapixels: Annotated[
        float, typer.Option(help="Refuse photos larger than this (decompression-bomb guard).")
    ] = 180.0,
    faiss_index: Annotated[
        str, typer.Option("--faiss-index", help="FAISS index type: auto, flat, hnsw or ivf.")
    ] = "auto",
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune", help="Remove photos that disappeared from the given folders."
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Index photos: detect objects, embed photos and crops, store them in INDEX."""
    from indexer.config import DetectOptions
    from indexer.pipeline import Indexer

    configure_ultralytics()
    options = DetectOptions(
        confidence=confidence, max_objects=max_objects, min_side=min_side, padding=padding
    )
    indexer = Indexer(
        index_dir,
        clip_model=clip_model,
        detector=detector,
        device=device,
        precision=precision,
        backend=backend,
        options=options,
        detect_objects=not photos_only,
        batch_size=batch_size,
        max_megapixels=max_megapixels,
        faiss_index=faiss_index,
    )
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("photos"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task("indexing", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        stats = indexer.index(photos, prune=prune, progress=progress)
    if as_json:
        print(json.dumps(stats.to_dict()))
        return
    out.print(
        f"[bold]{stats.indexed}[/] photos indexed, [bold]{stats.objects}[/] objects, "
        f"{stats.unchanged} unchanged, {stats.moved} moved, {stats.removed} removed, "
        f"[{'red' if stats.failures else 'green'}]{stats.failures} failures[/] "
        f"in {stats.seconds:.1f} s"
        + (f" ({stats.photos_per_second:.1f} photos/s)" if stats.indexed else ""),
        highlight=False,
    )
    for path, reason in stats.failed[:10]:
        out.print(
            f"  [red]skipped[/] {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True
        )
    if len(stats.failed) > 10:
        out.print(
            f"  ... and {len(stats.failed) - 10} more: see "
            f"'objsearch status --index {escape(str(index_dir))}'"
        )


@app.command()
@friendly
def search(
    query: Annotated[
        str | None, typer.Argument(help="Text query, e.g. 'a flowerpot'.", show_default=False)
    ] = None,
    index_dir: IndexDir = Path("."),
    image: Annotated[
        Path | None, typer.Option("--image", help="Search by example: a query photo.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Number of photos to return.")] = 10,
    objects_only: Annotated[
        bool, typer.Option("--objects-only", help="Match object crops only.")
    ] = False,
    photos_only: Annotated[
        bool, typer.Option("--photos-only", help="Match whole photos only.")
    ] = False,
    refine: Annotated[
        bool,
        typer.Option(
            "--refine", help="Refine the top results' boxes with CLIP sliding-window localization."
        ),
    ] = False,
    refine_top: Annotated[
        int, typer.Option("--refine-top", help="How many of the top results --refine localizes.")
    ] = 5,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search INDEX by text (QUERY) or by example (--image); one row per photo."""
    from indexer.errors import QueryError
    from retrieval.search import Searcher

    if (query is None) == (image is None):
        raise QueryError("Give a text QUERY or --image PATH (exactly one).")
    if objects_only and photos_only:
        raise QueryError("--objects-only and --photos-only exclude each other.")
    kind = "object" if objects_only else "image" if photos_only else None
    with Searcher(
        index_dir, clip_model=clip_model, device=device, precision=precision, backend=backend
    ) as searcher:
        results = searcher.search(text=query, image=image, top_k=top_k, kind=kind)
        if refine:
            from retrieval.refine import refine_results

            refine_results(searcher, results, text=query, image=image, top=refine_top)
    if as_json:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
        return
    if not results:
        out.print("No results.")
        return
    table = Table(
        title=escape(
            f"{len(results)} photos for {query!r}"
            if query
            else f"{len(results)} photos like {image}"
        )
    )
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("photo", overflow="fold")
    table.add_column("box")
    table.add_column("label")
    if refine:
        table.add_column("refined box")
    for r in results:
        row = [
            str(r.rank),
            f"{r.score:.3f}",
            escape(r.image),
            _fmt_box(r.box),
            escape(r.label or "(photo)"),
        ]
        if refine:
            row.append(_fmt_box(r.refined_box) if r.refined_box else "-")
        table.add_row(*row)
    out.print(table)


@app.command()
@friendly
def localize(
    photo: Annotated[Path, typer.Argument(help="The photo to search in.", show_default=False)],
    prompts: Annotated[
        list[str],
        typer.Argument(
            help="One or more text prompts, e.g. 'a butterfly' 'a cat'.", show_default=False
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the photo with one coloured box set per prompt (PNG/JPEG)."
        ),
    ] = None,
    heatmap: Annotated[
        Path | None, typer.Option("--heatmap", help="Write a heat-map overlay image.")
    ] = None,
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            "-i",
            envvar="OBJSEARCH_INDEX",
            help="Use this index's CLIP model (optional).",
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="window (sliding window) or occlusion.")] = "window",
    patch: Annotated[
        int | None,
        typer.Option(
            help="Patch side in pixels of the decoded photo. [default: from the photo size]"
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(help="Window side in patches. [default: 3 for window, 2 for occlusion]"),
    ] = None,
    stride: Annotated[int, typer.Option(help="Window stride in patches.")] = 1,
    threshold: Annotated[float, typer.Option(help="Heat threshold (0-1) for boxes.")] = 0.5,
    max_windows: Annotated[int, typer.Option(help="Cap on crops scored per prompt.")] = 128,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Localise PROMPTS on PHOTO with CLIP sliding windows (finds objects no detector class covers)."""
    from indexer.config import resolve, resolve_device
    from indexer.decode import DecodeError
    from indexer.embed import ClipEmbedder
    from indexer.errors import QueryError
    from retrieval.refine import localize_prompts
    from retrieval.render import draw_boxes, heatmap_overlay, prompt_colour

    if method not in ("window", "occlusion"):
        raise QueryError(f"--method must be window or occlusion, not {method!r}.")
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise QueryError("Give at least one non-empty prompt.")
    model = clip_model
    if model is None and index_dir is not None:
        from indexer.store import Store

        with Store(index_dir) as store:
            model = store.get_meta("clip_model")
    embedder = ClipEmbedder(
        resolve(model, ENV_CLIP_MODEL, None),
        resolve_device(device),
        precision=precision,
        backend=backend,
    )
    try:
        image, found = localize_prompts(
            os.fspath(photo),
            prompts,
            embedder,
            method=method,
            patch=patch,
            window=window,
            stride=stride,
            threshold=threshold,
            max_windows=max_windows,
        )
    except DecodeError as exc:
        raise QueryError(f"Cannot read {photo}: {exc}") from None
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    written = []
    if output is not None:
        _save_image(draw_boxes(image, [(f.prompt, f.result.boxes) for f in found]), output)
        written.append(str(output))
    if heatmap is not None:
        _save_image(heatmap_overlay(image, [f.result for f in found]), heatmap)
        written.append(str(heatmap))
    if as_json:
        print(
            json.dumps({"image": os.path.abspath(photo), "prompts": [f.to_dict() for f in found]})
        )
        return
    table = Table(title=f"{photo}")
    table.add_column("prompt")
    table.add_column("box (original pixels)")
    table.add_column("confidence", justify="right")
    for i, f in enumerate(found):
        colour = "#{:02x}{:02x}{:02x}".format(*prompt_colour(i))
        if not f.boxes:
            table.add_row(f"[{colour}]{f.prompt}[/]", "no box above the threshold", "-")
        for b in f.boxes:
            table.add_row(f"[{colour}]{f.prompt}[/]", _fmt_box(b.box), f"{b.confidence:.2f}")
    out.print(table)
    for path in written:
        out.print(f"wrote {path}", highlight=False)


@app.command()
@friendly
def export(
    index_dir: IndexDir,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Export INDEX as JSON Lines: one line per photo with caption and regions."""
    from indexer.store import Store
    from retrieval.export import export_jsonl

    with Store(index_dir) as store:
        if output is None:
            export_jsonl(store, sys.stdout)
            return
        tmp = output.with_name(output.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            count = export_jsonl(store, fh)
        os.replace(tmp, output)
    err.print(f"Exported {count} photos to {escape(str(output))}")


@app.command()
@friendly
def status(index_dir: IndexDir, as_json: JsonOpt = False) -> None:
    """Report INDEX: counts, models, failures, and whether SQLite and FAISS agree."""
    from indexer.doctor import check
    from indexer.store import Store

    with Store(index_dir) as store:
        health = check(store)
    if as_json:
        print(json.dumps(health.to_dict(), ensure_ascii=False))
        return
    table = Table(show_header=False, title=escape(f"objsearch index {health.index}"))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("photos", str(health.photos))
    table.add_row("object regions", str(health.objects))
    table.add_row("whole-photo regions", str(health.images))
    table.add_row("FAISS vectors", f"{health.vectors} ({health.faiss_kind or 'none'})")
    table.add_row("failures", str(health.failures))
    table.add_row("CLIP model", escape(f"{health.clip_model or '-'} ({health.embed_dim or '?'}-d)"))
    table.add_row("detector", escape(health.detector or "-"))
    table.add_row("consistent", "[green]yes[/]" if health.consistent else "[red]no[/]")
    out.print(table)
    for problem in health.problems:
        out.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
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


@app.command()
@friendly
def doctor(index_dir: IndexDir) -> None:
    """Repair INDEX: salvage a damaged database, drop orphans, rebuild FAISS."""
    from indexer.doctor import repair

    actions = repair(os.fspath(index_dir))
    if not actions:
        out.print("[green]The index is consistent; nothing to repair.[/]")
    for action in actions:
        out.print(f"- {escape(action)}", highlight=False)


@app.command()
@friendly
def serve(
    index_dir: IndexDir,
    host: Annotated[str, typer.Option(help="Address to bind; not loopback needs --token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(envvar="OBJSEARCH_TOKEN", help="Require this token on every API call."),
    ] = None,
    cors: Annotated[
        str | None, typer.Option("--cors", help="Allow this browser origin (CORS).")
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted, in MB.")] = 20.0,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Serve INDEX over HTTP: a JSON API under /api/v1 and a web page at /."""
    from retrieval.serve.run import serve as run_server

    run_server(
        index_dir,
        host=host,
        port=port,
        token=token,
        cors=cors,
        max_upload=int(max_upload_mb * 1e6),
        clip_model=clip_model,
        device=device,
        precision=precision,
        backend=backend,
    )


def main() -> None:
    """Console-script entry point."""
    import logging

    from rich.logging import RichHandler

    configure_ultralytics()
    handler = RichHandler(console=err, show_time=False, show_path=False, show_level=False)
    logging.getLogger("objsearch").addHandler(handler)
    logging.getLogger("objsearch").setLevel(logging.INFO)
    app()


if __name__ == "__main__":
    main()
