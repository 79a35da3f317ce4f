"""The ``objsearch`` Typer app: shared options, error handling and output helpers.

Human output goes to the terminal (tables, a progress bar on stderr); piped, tables become
plain tab-separated rows; ``--json`` prints machine-readable output on stdout only. Every error a user can cause ends in one clear
message and a non-zero exit code, never a traceback. Commands live in
:mod:`.indexing` (index, export, status, doctor), :mod:`.watch` (watch), :mod:`.query`
(search, localize) and :mod:`.models` (models, models save).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from indexer.errors import ObjsearchError, QueryError, UsageError
from indexer.settings import (
    DEFAULT_BACKEND,
    DEFAULT_CLIP_MODEL,
    DEFAULT_DEVICE,
    DEFAULT_PRECISION,
    ENV_BACKEND,
    ENV_CLIP_MODEL,
    ENV_DEVICE,
    ENV_INDEX,
    ENV_PRECISION,
    expand_path,
)
from retrieval.search.fields import rendered

app = typer.Typer(
    name="objsearch",
    help="Find objects inside your photos: index a folder, then search it by text or by example.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

# What a search request's fields are called on the command line (errors name these).
CLI_NAMES = {
    "text": "QUERY",
    "image": "--image",
    "like_region": "--like-region",
    "like_photo": "--like-photo",
    "negatives": "--not",
    "not_weight": "--not-weight",
    "image_weight": "--image-weight",
    "kind": "--objects-only/--photos-only",
    "group": "--group",
    "top_k": "--top-k",
    "refine": "--refine",
    "refine_top": "--refine-top",
    "after": "--after",
    "before": "--before",
    "folders": "--in",
    "labels": "--label",
    "camera": "--camera",
    "near": "--near",
    "min_score": "--min-score",
    "match": "--match",
    "ocr": "--ocr",
    "threshold": "--threshold",
}

F = TypeVar("F", bound=Callable[..., Any])

IndexDir = Annotated[
    Path,
    typer.Option(
        "--index",
        "-i",
        envvar=ENV_INDEX,
        help="Index folder (SQLite + FAISS files).",
        show_default=False,
    ),
]
ClipOpt = Annotated[
    str | None,
    typer.Option(
        "--clip-model",
        envvar=ENV_CLIP_MODEL,
        help=f"Embedding model (CLIP, SigLIP, SigLIP 2, AltCLIP; see `objsearch models`): Hugging Face id or local folder. [default: the index's model, else {DEFAULT_CLIP_MODEL}]",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device", envvar=ENV_DEVICE, help=f"auto, cpu or cuda. [default: {DEFAULT_DEVICE}]"
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        envvar=ENV_PRECISION,
        help=f"auto, fp32, bf16, fp16 or int8 for the embedding model (int8: the image encoder quantized once on the CPU, needs OpenVINO and nncf). [default: {DEFAULT_PRECISION}]",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        envvar=ENV_BACKEND,
        help=f"auto, torch or openvino (faster on CPU; models are converted once and cached). [default: {DEFAULT_BACKEND}]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]

# Filters shared by search and export (see retrieval.search.filters.SearchFilters).
AfterOpt = Annotated[
    str | None,
    typer.Option(
        "--after",
        help="Taken on or after this date: 2023, 2023-07 or 2023-07-14.",
        show_default=False,
    ),
]
BeforeOpt = Annotated[
    str | None,
    typer.Option("--before", help="Taken before this date (same forms).", show_default=False),
]
InOpt = Annotated[
    list[str] | None,
    typer.Option("--in", help="Only photos under this folder (repeatable).", show_default=False),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        help="Only objects with this detector label (repeatable; export: photos holding one).",
        show_default=False,
    ),
]
CameraOpt = Annotated[
    str | None,
    typer.Option("--camera", help="Camera name contains this text (any case).", show_default=False),
]
NearOpt = Annotated[
    str | None,
    typer.Option(
        "--near", help="Taken within KM of LAT,LON: --near 48.858,2.294,5.", show_default=False
    ),
]
MatchOpt = Annotated[
    str | None,
    typer.Option(
        "--match",
        help="Words that must all appear in the caption, labels or file name (or all in the text read in the photo).",
        show_default=False,
    ),
]


def friendly(fn: F) -> F:
    """Turn objsearch errors and Ctrl-C into one clear message and an exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ObjsearchError as exc:
            message = rendered(exc, CLI_NAMES)  # a request's fields by their flags
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print(
                "[yellow]Interrupted.[/] Everything committed so far is kept; run the same command again to resume."
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def fmt_box(box: Any) -> str:
    if box is None:
        return "whole photo"
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


def print_rows(title: str, headers: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> None:
    """A table on a terminal; plain tab-separated rows (no title, no wrapping) otherwise.

    Piped output feeds grep, cut and copy-paste: a table wrapped at 80 columns would split
    long paths. Cells are plain text; the terminal table escapes them for rich.
    """
    if not out.is_terminal:
        for row in ([headers] if headers else []) + list(rows):
            print("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))
        return
    table = Table(title=escape(title) if title else None, show_header=bool(headers))
    for header in headers or [""] * len(rows[0] if rows else []):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def check_output(path: Path) -> Path:
    """The path a drawing will be written to (``~`` expanded), checked before any model work."""
    from PIL import Image

    full = Path(expand_path(path))
    Image.init()
    if full.suffix.lower() not in Image.registered_extensions():
        raise UsageError(f"Cannot write {path}: {full.suffix or 'no'} is not an image extension.")
    if full.is_dir():
        raise UsageError(f"Cannot write {path}: it is a folder.")
    if not full.parent.is_dir():
        raise UsageError(f"Cannot write {path}: no such folder {full.parent}.")
    if not os.access(full.parent, os.W_OK) or (full.exists() and not os.access(full, os.W_OK)):
        raise UsageError(f"Cannot write {path}: permission denied.")
    return full


def save_image(image: Any, path: Path) -> None:
    """Save a drawing; fast PNG compression (these are large, short-lived pictures)."""
    try:
        image.save(path, compress_level=1) if path.suffix.lower() == ".png" else image.save(path)
    except (OSError, ValueError, KeyError) as exc:
        raise QueryError(f"Cannot write {path}: {exc}") from None
