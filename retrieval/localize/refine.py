"""Refine search hits and localise prompts on a photo with CLIP sliding windows.

The index stores detector boxes; the detector only knows its own classes and draws loose
boxes. Refinement runs :func:`retrieval.localize.localize` for the query inside each hit
(the matched crop plus a margin for object hits, the whole photo for whole-photo hits), so
a butterfly on a cat's nose gets its own box even though no detector class covers it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from indexer.geometry import crop_box, scale_box
from indexer.media.decode import (
    DecodedPhoto,
    DecodeError,
    load_query_image,
    read_given_photo,
    read_photo,
)

from ..search.request import SearchRequest
from ..search.searcher import Searcher, SearchResult
from .boxes import LocalizedBox
from .heatmap import Localization
from .locate import localize
from .scoring import CachedEmbedder, clip_score_fn

if TYPE_CHECKING:  # a search that refines nothing imports no model code
    from indexer.models.clip import ClipEmbedder

# What ``SearchResult.refinement`` says, so that ``refined_box: null`` is never ambiguous.
NOT_REQUESTED = "not requested"  # no --refine, or ranked below --refine-top
REFINED = "refined"  # refined_box holds the box
NONE_FOUND = "none found"  # localized, but nothing passed the threshold
UNREADABLE = "photo unreadable"  # the photo can no longer be read
REFINEMENTS = (NOT_REQUESTED, REFINED, NONE_FOUND, UNREADABLE)

# Localisation scores windows of a photo decoded at about this long side: fine enough for
# boxes within a few pixels of a patch, and far cheaper to decode than a 20 MP original.
LOCALIZE_DECODE_SIDE = 1600


@dataclass
class PromptLocalization:
    """The localisation of one prompt on one photo, in original-photo pixels."""

    prompt: str
    result: Localization
    boxes: list[LocalizedBox]

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "boxes": [
                {"box": [round(v, 1) for v in b.box], "confidence": round(b.confidence, 4)}
                for b in self.boxes
            ],
            "grid": list(self.result.grid),
            "patch": self.result.patch,
            "windows_scored": self.result.windows_scored,
        }


def read_localize_photo(path: str | os.PathLike[str]) -> DecodedPhoto:
    """Read a photo named for localisation (``~`` expanded), decoded at the working size."""
    return read_given_photo(path, decode_side=LOCALIZE_DECODE_SIDE)


def localize_prompts(
    photo: str | DecodedPhoto,
    prompts: Sequence[str],
    embedder: ClipEmbedder,
    **options: Any,
) -> tuple[Image.Image, list[PromptLocalization]]:
    """Localise each prompt on one photo (a path or :func:`read_localize_photo`'s result).

    Boxes come back in original-photo pixels. Returns the decoded photo (possibly reduced,
    for drawing) and one result per prompt.
    """
    if not isinstance(photo, DecodedPhoto):
        photo = read_localize_photo(photo)
    sx, sy = photo.scale
    cached = CachedEmbedder(embedder)
    out = []
    for prompt in prompts:
        result = localize(photo.image, clip_score_fn(cached, text=prompt), **options)
        boxes = [
            LocalizedBox(scale_box(b.box, sx, sy), b.confidence, b.cells) for b in result.boxes
        ]
        out.append(PromptLocalization(prompt, result, boxes))
    return photo.image, out


def search_refined(searcher: Searcher, request: SearchRequest) -> list[SearchResult]:
    """The request's results, their boxes refined when it asks (``refine``, ``refine_top``).

    A text query is localized as text, an example photo as that image; what the CLI, the
    HTTP API and apps call to run a whole request.
    """
    results = searcher.find(request)
    if request.refine and results:
        example = request.image if request.text is None else None
        refine_results(searcher, results, text=request.text, image=example, top=request.refine_top)
    return results


def refine_results(
    searcher: Searcher,
    results: Sequence[SearchResult],
    *,
    text: str | None = None,
    image: str | os.PathLike[str] | Image.Image | None = None,
    top: int | None = None,
    margin: float = 0.25,
    max_windows: int = 64,
    **options: Any,
) -> None:
    """Set ``refined_box`` and ``refinement`` on the first ``top`` results (all by default).

    Object hits are searched inside their crop widened by ``margin`` of the box size on each
    side; whole-photo hits over the whole photo. ``refinement`` says what happened: see
    :data:`REFINEMENTS` (results beyond ``top`` stay ``"not requested"``). ``max_windows``
    is lower than for ``localize`` on its own because a crop needs a coarser grid than a
    photo, and search should answer in seconds.
    """
    chosen = list(results)[: top if top is not None else len(results)]
    if not chosen:
        return
    if image is not None and not isinstance(image, Image.Image):
        image = load_query_image(os.fspath(image))
    cached = CachedEmbedder(searcher.embedder)
    score_fn = (
        clip_score_fn(cached, text=text) if text is not None else clip_score_fn(cached, image=image)
    )
    for result in chosen:
        result.refinement = UNREADABLE
        try:
            photo = read_photo(result.image, decode_side=LOCALIZE_DECODE_SIDE)
        except DecodeError:
            continue
        result.refinement = NONE_FOUND
        sx, sy = photo.scale
        region = photo.image
        dx = dy = 0.0
        if result.box is not None:
            left, top_, right, bottom = crop_box(result.box, margin, photo.image.size, photo.scale)
            if right - left < 2 or bottom - top_ < 2:
                continue
            region = photo.image.crop((left, top_, right, bottom))
            dx, dy = float(left), float(top_)
        found = localize(region, score_fn, max_windows=max_windows, **options)
        if found.boxes:
            result.refinement = REFINED
            best = found.boxes[0]
            x1, y1, x2, y2 = scale_box(best.box, sx, sy, dx, dy)
            result.refined_box = (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))
