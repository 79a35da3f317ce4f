"""The ``duplicates`` command: groups of copies in an index, with the one to keep."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from indexer.settings import DEFAULT_DUPLICATE_THRESHOLD as DEFAULT_THRESHOLD

from .app import IndexDir, JsonOpt, friendly, out


@friendly
def duplicates(
    index_dir: IndexDir,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            help="Whole-photo cosine from which two photos count as near copies (0-1].",
        ),
    ] = DEFAULT_THRESHOLD,
    as_json: JsonOpt = False,
) -> None:
    """List duplicate photos in INDEX (same bytes, or resized/recompressed copies); deletes nothing."""
    from indexer.store import Store
    from retrieval.duplicates import find_duplicates

    with Store(index_dir) as store:
        groups = find_duplicates(store, threshold)
    if as_json:
        print(json.dumps([g.to_dict() for g in groups], ensure_ascii=False))
        return
    if not groups:
        out.print("No duplicates.")
        return
    table = Table(title=f"{len(groups)} groups of duplicates (nothing was deleted)")
    table.add_column("group", justify="right")
    table.add_column("kind")
    table.add_column("photo", overflow="fold")
    table.add_column("pixels", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("similarity", justify="right")
    table.add_column("suggestion")
    for number, group in enumerate(groups, 1):
        for photo in group.photos:
            table.add_row(
                str(number),
                group.kind,
                escape(photo.path),
                f"{photo.width}x{photo.height}",
                str(photo.size),
                f"{photo.similarity:.3f}",
                "keep" if photo.keep else "copy",
            )
    out.print(table)
