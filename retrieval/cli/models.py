"""``objsearch models``: the supported model families, and offline copies of models."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import JsonOpt, friendly, out

models_app = typer.Typer(
    help="List the supported embedding models and detectors, or save one for offline use.",
    invoke_without_command=True,
)

DETECTORS_NOTE = (
    "Detectors (--detector / OBJSEARCH_DETECTOR): any ultralytics detection model, e.g. "
    "yolo11n.pt (default), yolov8n.pt, yolo26n.pt, rtdetr-l.pt; segmentation and pose models "
    "are used for their boxes; YOLO-World / YOLOE with --detector-classes. "
    "`objsearch models save ID DIR` makes an offline copy of any of them."
)


@models_app.callback()
@friendly
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the supported model families, suggested hub ids, embedding sizes and speeds."""
    if ctx.invoked_subcommand is not None:
        return
    from indexer.models.catalog import DEFAULT_REASON, catalog, is_default, model_speeds

    rows, about = catalog()
    side_by_side, side_about = model_speeds()
    if as_json:
        listing = [
            {
                "family": r.family.name,
                "title": r.family.title,
                "model_class": r.family.model_class,
                "default": is_default(r.family),
                "hub_ids": [
                    {"id": h, "embed_dim": d, "license": r.family.license_of(h)}
                    for h, d in r.family.hub_ids
                ],
                "photos_per_s": r.speed.objects if r.speed else None,
                "photos_only_per_s": r.speed.photos_only if r.speed else None,
                "measured_shape": r.speed.shape if r.speed else None,
                "note": r.family.note,
                "side_by_side": [
                    {f.name: getattr(m, f.name) for f in fields(m) if f.name != "family"}
                    for m in side_by_side
                    if m.family.name == r.family.name
                ],
            }
            for r in rows
        ]
        print(json.dumps(listing))
        return
    table = Table(title="Embedding models (--clip-model / OBJSEARCH_CLIP_MODEL)")
    columns = ("family", "hub ids (embedding size)", "licence", "photos/s", "photos-only /s")
    for name in (*columns, "notes"):
        table.add_column(name, overflow="fold")
    for row in rows:
        speed = row.speed
        default = " [bold](default)[/]" if is_default(row.family) else ""
        table.add_row(
            f"{escape(row.family.title)}{default}",
            "\n".join(f"{h} ({d}-d)" for h, d in row.family.hub_ids),
            "\n".join(escape(row.family.license_of(h)) for h, _ in row.family.hub_ids),
            f"{speed.objects:.2f}" if speed and speed.objects else "not measured",
            f"{speed.photos_only:.2f}" if speed and speed.photos_only else "-",
            escape(row.family.note + (f"; measured: {speed.shape}" if speed else "")),
        )
    out.print(table)
    if about:
        out.print(
            escape(
                f"Speeds: {about.get('what', 'indexing speed')}, measured on "
                f"{about.get('machine', '?')} ({about.get('date', '?')}) with random weights of "
                f"each shape; {about.get('noise', '')}"
            ),
            highlight=False,
        )
    if side_by_side:
        out.print(side_by_side_table(side_by_side))
        out.print(
            escape(
                f"Side by side: {side_about.get('machine', '?')} ({side_about.get('date', '?')}); "
                f"{side_about.get('noise', '')}"
            ),
            highlight=False,
        )
    out.print(DEFAULT_REASON, highlight=False)
    out.print(DETECTORS_NOTE, highlight=False)


def side_by_side_table(speeds: list) -> Table:  # list[ModelSpeed]
    """The architectures timed side by side, with their ratios to the default's model."""
    table = Table(
        title="Measured side by side (random weights of each shape; on a shared machine the "
        "ratios to CLIP ViT-B/32 are what count)"
    )
    columns = ("model", "checkpoint", "licence", "photos/s", "photos-only /s")
    for name in (*columns, "image tower /s", "text tower /s"):
        table.add_column(name, overflow="fold")

    def speed(value: float | None, ratio: float | None) -> str:
        return f"{value:.2f} ({ratio:.2f}×)" if value and ratio else "-"

    for m in speeds:
        table.add_row(
            escape(f"{m.family.name}: {m.shape}"),
            escape(m.checkpoint),
            escape(m.license),
            speed(m.objects, m.objects_ratio),
            speed(m.photos_only, m.photos_only_ratio),
            speed(m.images_per_s, m.images_ratio),
            speed(m.texts_per_s, m.texts_ratio),
        )
    return table


@models_app.command("save")
@friendly
def save(
    source: Annotated[
        str,
        typer.Argument(
            help="Hugging Face hub id (or a local model folder), or an ultralytics weights name / .pt file.",
            show_default=False,
        ),
    ],
    dest: Annotated[
        Path,
        typer.Argument(
            help="A new folder for an embedding model; the folder to put the .pt file in for a detector.",
            show_default=False,
        ),
    ],
) -> None:
    """Download a model once (needs internet) and save it for offline use."""
    from indexer.models.save import save_model

    saved = save_model(source, dest)
    what = "detector" if saved.kind == "detector" else f"{saved.family} model, {saved.embed_dim}-d"
    out.print(f"Saved {escape(source)} ({what}) to {escape(str(saved.path))}", highlight=False)
    out.print(f"Use it with: export {saved.env_var}={escape(str(saved.path))}", highlight=False)
