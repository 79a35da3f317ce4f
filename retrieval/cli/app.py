"""The ``objsearch`` Typer app: shared options, error handling and output helpers.

Human output goes to the terminal (tables, a progress bar on stderr); ``--json`` prints
machine-readable output on stdout only. Every error a user can cause ends in one clear
message and a non-zero exit code, never a traceback. Commands live in
:mod:`.indexing` (index, export, status, doctor), :mod:`.query` (search, localize) and
:mod:`.models` (models, models save).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from indexer.errors import ObjsearchError, QueryError
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
)

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
        help=f"auto, fp32, bf16 or fp16 for the embedding model. [default: {DEFAULT_PRECISION}]",
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


def fmt_box(box: Any) -> str:
    if box is None:
        return "whole photo"
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


def save_image(image: Any, path: Path) -> None:
    """Save a drawing; fast PNG compression (these are large, short-lived pictures)."""
    try:
        image.save(path, compress_level=1) if path.suffix.lower() == ".png" else image.save(path)
    except (OSError, ValueError, KeyError) as exc:
        raise QueryError(f"Cannot write {path}: {exc}") from None
