"""The ``search`` command's own options, as Typer annotations (the shared ones are in .app).

Kept apart so the command reads as what it does: build a
:class:`~retrieval.search.request.SearchRequest`, run it, print the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrieval.search.compose import DEFAULT_IMAGE_WEIGHT

QueryArg = Annotated[
    str | None, typer.Argument(help="Text query, e.g. 'a flowerpot'.", show_default=False)
]
ImageOpt = Annotated[
    Path | None,
    typer.Option("--image", help="Search by example: a query photo (with QUERY: both)."),
]
TopKOpt = Annotated[
    int, typer.Option("--top-k", "-k", help="Number of photos (or crops) to return.")
]
ObjectsOnlyOpt = Annotated[bool, typer.Option("--objects-only", help="Match object crops only.")]
PhotosOnlyOpt = Annotated[bool, typer.Option("--photos-only", help="Match whole photos only.")]
MinScoreOpt = Annotated[
    float | None,
    typer.Option("--min-score", help="Drop results scoring below this cosine.", show_default=False),
]
OcrOpt = Annotated[
    str | None,
    typer.Option(
        "--ocr",
        help="Words read in the photos (index with --ocr): alone, the lines of text that contain them; with QUERY, only photos whose text has them. Any case, accents folded, inside longer words too.",
        show_default=False,
    ),
]
NotOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--not", help="Push results away from this prompt (repeatable).", show_default=False
    ),
]
NotWeightOpt = Annotated[
    float, typer.Option("--not-weight", help="How far each --not moves the query.")
]
ImageWeightOpt = Annotated[
    float | None,
    typer.Option(
        "--image-weight",
        help=f"Weight of the example against QUERY (0-1). [default: {DEFAULT_IMAGE_WEIGHT}]",
        show_default=False,
    ),
]
LikeRegionOpt = Annotated[
    int | None,
    typer.Option("--like-region", help="More like this region (a region_id).", show_default=False),
]
LikePhotoOpt = Annotated[
    int | None,
    typer.Option("--like-photo", help="More like this photo (a photo_id).", show_default=False),
]
GroupOpt = Annotated[
    str, typer.Option("--group", help="photo: one row per photo; object: every matching crop.")
]
RefineOpt = Annotated[
    bool,
    typer.Option(
        "--refine", help="Refine the top results' boxes with CLIP sliding-window localization."
    ),
]
RefineTopOpt = Annotated[
    int, typer.Option("--refine-top", help="How many of the top results --refine localizes.")
]
