"""Query -> results: embed a query, rank regions with FAISS, join SQLite, group by photo.

A query is a text, an example (a photo file, a stored region or photo) or both, minus any
negative prompts (see :mod:`.compose`). Filters (:class:`~.filters.SearchFilters`) are
pushed down: one SQL query gives the allowed region ids, which are ranked exactly (brute
force over the subset) when they are few, or through a FAISS ``IDSelector`` when they are
many, so a rare filter still fills ``top_k``.

Results are grouped by parent photo: one photo with three matching crops is one result that
shows its best-scoring region (``matches`` says how many of its regions were among the
candidates); ``group="object"`` lists every matching crop instead. The searcher follows the
index while it is being written: before each query it checks the store's generation and
reloads vectors when new batches were committed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from indexer.errors import QueryError, StoreError
from indexer.models.identity import model_mismatch
from indexer.models.lifecycle import ModelChoice
from indexer.models.text import TextQueries, normalise_query
from indexer.store import (
    KIND_IMAGE,
    IndexParams,
    LiveVectors,
    Region,
    Store,
    decode_vector,
)

from .compose import DEFAULT_NOT_WEIGHT, blend, push_away
from .fields import FieldError
from .filters import SearchFilters, matching_region_ids
from .ranking import Skip, rank_exact, rank_expanding, rank_text_lines
from .request import MAX_OFFSET, MAX_TOP_K, SearchRequest, check_shape, query_image
from .results import Group, RegionKind, SearchResult

if TYPE_CHECKING:  # a text search never imports PIL's codecs, transformers or torch
    from PIL import Image

    from indexer.models.clip import ClipEmbedder

    from .preload import TextPreload

# Allowed sets up to this many regions are ranked exactly (brute force over the subset,
# about 1 ms per 10k regions); larger ones go through FAISS with an IDSelector, where a
# graph index keeps its recall because the filter lets most of the graph through.
EXACT_SUBSET_MAX = 100_000
ALLOWED_CACHE = 8  # filter sets remembered per searcher


def check_query(text: str | None, image: object) -> None:
    """Refuse a malformed query before any model work: exactly one of text and image."""
    if (text is None) == (image is None):
        raise QueryError("Give exactly one query: a text or an image.")
    if text is not None:
        normalise_query(text)  # raises on an empty query


class Searcher:
    """Searches an index folder by text or by example image.

    The CLIP model defaults to the one recorded in the index; another model is refused
    unless its vectors match (the same weights from another path). Text queries use the
    torch-free text encoder (:mod:`indexer.models.text`) when the model's conversion is
    cached on this machine; the full model loads only for what needs it (image queries,
    refinement), or for text when nothing is cached.

    One searcher may serve many threads (the server's): models load once under the
    searcher's model lock and are thread-safe themselves, and a FAISS reload happens once
    under its vectors lock.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        clip_model: str | None = None,
        device: str | None = None,
        *,
        precision: str | None = None,
        backend: str | None = None,
        params: IndexParams | None = None,
        embedder: ClipEmbedder | None = None,
        preload: TextPreload | None = None,
        load_encoder: bool = True,
    ) -> None:
        self.store = Store(index_dir)
        self._preload = preload  # a text encoder already loading (see .preload)
        self.params = params or IndexParams()
        self.choice = ModelChoice(clip_model, device, precision, backend)
        self._embedder = embedder
        self._model_lock = threading.RLock()  # loads each model once
        self._vectors_lock = threading.RLock()  # reloads FAISS once; guards the filter cache
        self._text: TextQueries | None = None  # the torch-free text encoder, once checked
        self._checked = False
        self._generation = -1
        self._index: LiveVectors | None = None
        # Allowed-region sets of recent filters: paging or rewording a query keeps its
        # filters, and the SQL is then skipped. Cleared whenever the index changes.
        self._allowed: dict[tuple[SearchFilters, str | None], tuple[np.ndarray, np.ndarray]] = {}
        if load_encoder and "clip_model" in self.store.meta():
            # (a search of the text read in photos embeds nothing: load_encoder=False)
            self.text_encoder  # noqa: B018 - load and check the model now, not at the first query

    def _recorded_choice(self, meta: dict[str, str]) -> ModelChoice:
        """The model to load: the one asked for, else the index's (refused while it has none)."""
        if "clip_model" not in meta:
            raise StoreError(
                f"The index at {self.store.dir} holds no photos yet: run 'objsearch index' first."
            )
        return self.choice.with_model(meta["clip_model"])

    @property
    def text_encoder(self) -> TextQueries:
        """What embeds text queries, checked against the index like :attr:`embedder`.

        The full model once it is loaded (or given); else the torch-free text encoder when
        this machine has the model's text tower converted; else the full model.
        """
        with self._model_lock:
            if self._embedder is not None or self._checked:
                return self.embedder
            if self._text is None:
                meta = self.store.meta()
                choice = self._recorded_choice(meta)
                preload, self._preload = self._preload, None
                if preload is not None and preload.model_id == choice.clip_model:
                    light = preload.result()
                else:
                    light = choice.text_encoder()
                if light is None:
                    return self.embedder
                problem = model_mismatch(meta, light)
                if problem:
                    raise StoreError(problem)
                self._text = light
            return self._text

    @property
    def embedder(self) -> ClipEmbedder:
        """The CLIP model: the index's own unless another was given, checked against it.

        An index whose first batch is not committed yet records no model; until it does,
        searches return nothing and no model is loaded.
        """
        with self._model_lock:
            meta = self.store.meta() if not self._checked else {}
            if self._embedder is None:
                choice = self._recorded_choice(meta)
                self._embedder = choice.embedder(calibration_key=meta.get("int8_calibration"))
            if not self._checked and "clip_model" in meta:
                problem = model_mismatch(meta, self._embedder)
                if problem:
                    raise StoreError(problem)
                self._checked = True
            return self._embedder

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def vectors(self) -> LiveVectors:
        """The vectors of the latest committed generation (reloaded when it moves on).

        A reload keeps the FAISS main segment when its file has not changed and reads only
        the changes since from SQLite.
        """
        with self._vectors_lock:
            generation = self.store.generation
            if self._index is None or generation != self._generation:
                self._index, _ = self.store.load_vectors(
                    self.params, persist=True, reuse=self._index
                )
                self._generation = generation
                self._allowed.clear()
            return self._index

    @property
    def empty(self) -> bool:
        """True while the index holds no committed photo (e.g. its first batch is in flight)."""
        return self.vectors.ntotal == 0

    def query_vector(
        self, text: str | None = None, image: str | os.PathLike[str] | Image.Image | None = None
    ) -> np.ndarray:
        """The unit query vector for a text (prompt-ensembled) or an image."""
        check_query(text, image)
        if text is not None:
            return self.text_encoder.embed_text(normalise_query(text))
        assert image is not None  # check_query refused a query with neither
        return self.embedder.embed_image(self.query_image(image))

    query_image = staticmethod(query_image)

    def compose_query(
        self,
        text: str | None = None,
        image: str | os.PathLike[str] | Image.Image | None = None,
        *,
        negatives: Sequence[str] = (),
        not_weight: float = DEFAULT_NOT_WEIGHT,
        image_weight: float | None = None,
        like_region: int | None = None,
        like_photo: int | None = None,
    ) -> np.ndarray:
        """The unit query vector for a text and/or one example, minus negative prompts."""
        example = (image, like_region, like_photo)
        request = SearchRequest(text, *example, tuple(negatives), not_weight, image_weight)
        return self.query_for(request)

    def query_for(self, request: SearchRequest) -> np.ndarray:
        """The unit query vector of a request: its text and/or example, minus its negatives."""
        example = None
        if request.image is not None:
            example = self.query_vector(image=request.image)
        elif request.like_region is not None:
            example = self.region_vector(request.like_region)
        elif request.like_photo is not None:
            example = self.photo_vector(request.like_photo)
        if request.text is not None:
            query = self.query_vector(text=request.text)
            if example is not None:
                query = blend(query, example, request.example_weight)
        else:
            assert example is not None  # the request refuses one with neither
            query = example
        negatives = [self.query_vector(text=n) for n in request.negatives]
        return push_away(query, negatives, request.not_weight)

    def region_vector(self, region_id: int) -> np.ndarray:
        """The stored vector of one region (for "more like this object")."""
        found = Region.id == int(region_id)
        return self._stored(found, "like_region", f"region {region_id}", "region_id")

    def photo_vector(self, photo_id: int) -> np.ndarray:
        """The stored whole-photo vector of one photo (for "more like this photo")."""
        found = (Region.photo_id == int(photo_id)) & (Region.kind == KIND_IMAGE)
        return self._stored(found, "like_photo", f"photo {photo_id}", "photo_id")

    def _stored(self, where: Any, field: str, what: str, key: str) -> np.ndarray:
        """The one stored vector ``where`` selects; ``field`` is refused when there is none."""
        with self.store.session() as s:
            blob = s.scalar(select(Region.vector).where(where))
        if blob is None:
            raise FieldError(
                field, f"there is no {what} in this index (ids come from search results: {key})."
            )
        return decode_vector(blob, self.store.dim())

    def search(
        self,
        text: str | None = None,
        image: str | os.PathLike[str] | Image.Image | None = None,
        top_k: int = 10,
        *,
        kind: RegionKind | None = None,
        filters: SearchFilters | None = None,
        negatives: Sequence[str] = (),
        not_weight: float = DEFAULT_NOT_WEIGHT,
        image_weight: float | None = None,
        like_region: int | None = None,
        like_photo: int | None = None,
        group: Group = "photo",
        ocr: str | None = None,
    ) -> list[SearchResult]:
        """Top ``top_k`` photos (or object crops with ``group="object"``) for the query.

        The keywords are those of :class:`~.request.SearchRequest` (see there); ``ocr`` is
        a shortcut for ``filters.ocr``. The same as ``find(SearchRequest(...))``.
        """
        if ocr is not None:
            filters = replace(filters or SearchFilters(), ocr=ocr)
        request = SearchRequest(
            text,
            image,
            like_region,
            like_photo,
            tuple(negatives),
            not_weight,
            image_weight,
            filters or SearchFilters(),
            kind=kind,
            group=group,
            top_k=top_k,
        )
        return self.find(request)

    def find(self, request: SearchRequest) -> list[SearchResult]:
        """The results of a request: its page (``offset``, ``top_k``) of the ranking.

        Words read in photos alone (``filters.ocr``) give lines of text (see
        :meth:`search_text`). An index without committed photos gives an empty list and
        loads no model. Refinement (``request.refine``) is the caller's: see
        :func:`retrieval.localize.refine.search_refined`. "More like this" leaves the
        example region (or photo) itself out of the results.
        """
        if request.text_lines:
            found = self.search_text(request.filters, request.ranked, request.group)
        elif self.empty:  # nothing committed yet: load no model
            return []
        else:
            found = self.search_vector(
                self.query_for(request),
                request.ranked,
                kind=request.kind,
                filters=request.filters,
                group=request.group,
                exclude_region=request.like_region,
                exclude_photo=request.like_photo,
            )
        return found[request.offset :]

    def search_text(
        self, filters: SearchFilters, top_k: int = 10, group: Group = "photo"
    ) -> list[SearchResult]:
        """The lines of text read in photos that contain every word of ``filters.ocr``.

        Ranked whole words first, then confidence (see :mod:`.text_match`); one line per
        photo (its best, ``matches`` counting its matching lines) unless ``group="object"``.
        The other filters restrict the photos; ``labels`` keeps photos with such an object.
        """
        return rank_text_lines(self.store, filters, top_k, group)

    def allowed_regions(
        self, filters: SearchFilters, kind: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(region ids, their photo ids) passing ``filters``: one SQL query over indexes.

        Call after :attr:`vectors` (which clears the cache when the index has changed).
        """
        key = (filters, kind)
        with self._vectors_lock:
            found = self._allowed.get(key)
        if found is None:
            with self.store.session() as s:
                found = matching_region_ids(s, filters, kind)
            with self._vectors_lock:
                if len(self._allowed) >= ALLOWED_CACHE:
                    self._allowed.pop(next(iter(self._allowed)))
                self._allowed[key] = found
        return found

    def search_vector(
        self,
        query: np.ndarray,
        top_k: int = 10,
        *,
        kind: RegionKind | None = None,
        filters: SearchFilters | None = None,
        group: Group = "photo",
        exclude_region: int | None = None,
        exclude_photo: int | None = None,
    ) -> list[SearchResult]:
        """Ranked results for an already-embedded query vector."""
        kind = check_shape(top_k, kind, group, most=MAX_OFFSET + MAX_TOP_K)
        filters = filters or SearchFilters()
        index = self.vectors
        skip = Skip(exclude_region, exclude_photo, filters.min_score)
        if not filters.restricts_rows:
            if index.ntotal == 0:
                return []
            return rank_expanding(
                self.store,
                lambda k: index.search(query[None, :], k),
                index.ntotal,
                top_k,
                kind,
                group,
                skip,
            )
        ids, photos = self.allowed_regions(filters, kind)
        if len(ids) > EXACT_SUBSET_MAX:
            return rank_expanding(
                self.store,
                lambda k: index.search(query[None, :], k, allowed=ids),
                len(ids),
                top_k,
                kind,
                group,
                skip,
            )
        found, scores = index.scores_for(query, ids)
        at = np.searchsorted(ids, found)
        return rank_exact(self.store, found, photos[at], scores, top_k, group, skip)
