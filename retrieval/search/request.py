"""One search as a record: what the CLI, the HTTP API and the Python API hand the searcher.

A :class:`SearchRequest` holds the query (a text, one example, negative prompts), the
filters, the grouping and the limits. It checks itself once, when it is made, before any
model loads, so a mistake costs no seconds of model start-up and every surface refuses the
same things with the same limits. Its errors are :class:`~.fields.FieldError`, naming the
field; the CLI and the HTTP layer call each field by the name their users typed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from indexer.media.decode import DecodeError

from .compose import DEFAULT_IMAGE_WEIGHT, DEFAULT_NOT_WEIGHT, MAX_NOT_WEIGHT
from .fields import FieldError, check_range
from .filters import SearchFilters
from .results import GROUPS, Group, RegionKind

if TYPE_CHECKING:  # a text search never imports PIL's codecs
    from PIL import Image

    Example = str | os.PathLike[str] | Image.Image

MAX_TOP_K = 1000  # results a request may ask for
MAX_OFFSET = 2000  # results a request may skip (a page ranks offset + top_k)
MAX_REFINE_TOP = 20  # results one request may localize (each costs a model pass per window)
KINDS = ("object", "image")
EXAMPLES = ("image", "like_region", "like_photo")


def check_shape(
    top_k: int, kind: str | None, group: str, most: int = MAX_TOP_K
) -> RegionKind | None:
    """The region kind to rank, from ``kind`` and ``group`` (``group="object"``: objects).

    ``most`` is the largest ``top_k``: a page deep in the ranking ranks up to
    ``MAX_OFFSET + MAX_TOP_K`` results to return the last ``MAX_TOP_K``.
    """
    check_range("top_k", top_k, 1, most)
    if kind is not None and kind not in KINDS:
        raise FieldError("kind", f"must be object, image or none, not {kind!r}.")
    if group not in GROUPS:
        raise FieldError("group", f"must be photo or object, not {group!r}.")
    if group == "object":
        if kind == "image":
            raise FieldError(
                "group",
                "object lists object crops: it cannot be combined with {kind} image.",
                also=["kind"],
            )
        return "object"
    return kind  # type: ignore[return-value]  # checked above


def clean_negatives(negatives: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The negative prompts, stripped, refusing empty ones (an empty one is a mistake)."""
    if negatives is None:
        return ()
    if isinstance(negatives, str):
        negatives = [negatives]
    cleaned = tuple(str(text).strip() for text in negatives)
    if any(not text for text in cleaned):
        raise FieldError("negatives", "the negative prompt is empty.")
    return cleaned


def query_image(image: Example) -> Image.Image:
    """A query image, decoded: a path (``~`` expanded) or an already-open image."""
    from PIL import Image

    from indexer.media.decode import load_query_image

    if isinstance(image, Image.Image):
        return image
    try:
        return load_query_image(image)
    except DecodeError as exc:
        raise FieldError(
            "image", f"cannot use {os.fspath(image)} as a query image: {exc}"
        ) from None


@dataclass(frozen=True)
class SearchRequest:
    """A search: what to look for, what may be returned, and how many.

    ``text`` and at most one example (``image``: a path or a PIL image; ``like_region``;
    ``like_photo``) combine with ``image_weight`` (default 0.5; only with both);
    ``negatives`` push the query away from prompts by ``not_weight`` each. ``filters``
    restrict the photos and regions; ``filters.ocr`` without a query or example makes the
    results the lines of text that hold its words. ``kind`` picks object crops or whole
    photos (None: both); ``group="object"`` lists every matching crop instead of one result
    per photo. ``offset`` skips that many results (the next page), ``top_k`` are returned.
    ``refine`` localizes the query in the first ``refine_top`` results.

    An image given as a path is decoded here, so a request that exists can be searched.
    """

    text: str | None = None
    image: Example | None = None
    like_region: int | None = None
    like_photo: int | None = None
    negatives: tuple[str, ...] = ()
    not_weight: float = DEFAULT_NOT_WEIGHT
    image_weight: float | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)
    kind: RegionKind | None = None
    group: Group = "photo"
    top_k: int = 10
    offset: int = 0
    refine: bool = False
    refine_top: int = 5

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        check_range("offset", self.offset, 0, MAX_OFFSET)
        check_range("refine_top", self.refine_top, 0, MAX_REFINE_TOP)
        check_range("not_weight", self.not_weight, 0, MAX_NOT_WEIGHT)
        examples = [name for name in EXAMPLES if getattr(self, name) is not None]
        if len(examples) > 1:
            raise FieldError(
                examples[1],
                "give one example at most: {image}, {like_region} or {like_photo}.",
                also=EXAMPLES,
            )
        put(self, "negatives", clean_negatives(self.negatives))
        if self.text is not None and not self.text.strip():
            raise FieldError("text", "the text query is empty.")
        if self.text is None and not examples and not self.filters.ocr:
            raise FieldError(
                "text",
                "give a text query, {image}, {like_region}, {like_photo} or {ocr}.",
                also=(*EXAMPLES, "ocr"),
            )
        self._check_combinations(bool(examples))
        put(
            self,
            "kind",
            None if self.text_lines else check_shape(self.top_k, self.kind, self.group),
        )
        if self.image is not None:
            put(self, "image", query_image(self.image))

    def _check_combinations(self, has_example: bool) -> None:
        """The rules between fields: weights, negatives, refinement, lines of text."""
        if self.image_weight is not None:
            if self.text is None or not has_example:
                raise FieldError(
                    "image_weight", "weighs an example against a text query: give both."
                )
            check_range("image_weight", self.image_weight, 0, 1)
        if self.refine and self.text is None and self.image is None:
            raise FieldError(
                "refine", "localizes a text query or an {image}: give one.", also=["image"]
            )
        if not self.text_lines:
            return
        check_range("top_k", self.top_k, 1, MAX_TOP_K)
        if self.negatives:
            raise FieldError("negatives", "pushes a text query away from a prompt: give a query.")
        if self.kind is not None:
            raise FieldError(
                "kind",
                "chooses among objects and photos; an {ocr} search without a query returns "
                "lines of text.",
                also=["ocr"],
            )

    @property
    def text_lines(self) -> bool:
        """True when the results are lines of text read in photos (``ocr`` alone)."""
        examples = (self.image, self.like_region, self.like_photo)
        return self.text is None and all(x is None for x in examples)

    @property
    def example_weight(self) -> float:
        """The weight of the example against the text (the default unless one was given)."""
        return DEFAULT_IMAGE_WEIGHT if self.image_weight is None else self.image_weight

    @property
    def ranked(self) -> int:
        """How many results to rank: the page and everything before it."""
        return self.offset + self.top_k
