"""Query -> results: embed a text or image query, search FAISS, join SQLite, group by photo.

Results are grouped by parent photo: one photo with three matching crops is one result that
shows its best-scoring region (``matches`` says how many of its regions were among the
candidates). The searcher follows the index while it is being written: before each query it
checks the store's generation and reloads vectors when new batches were committed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from PIL import Image

from indexer.errors import QueryError, StoreError
from indexer.media.decode import DecodeError, load_query_image
from indexer.models.clip import ClipEmbedder, normalise_query
from indexer.models.identity import model_mismatch
from indexer.settings import resolve_clip_model, resolve_device
from indexer.store import KIND_IMAGE, KIND_OBJECT, IndexParams, Photo, Region, Store, VectorIndex

RegionKind = Literal["object", "image"]


@dataclass
class SearchResult:
    """One photo in the ranking, represented by its best-matching region."""

    rank: int
    score: float
    image: str
    kind: str
    box: tuple[float, float, float, float] | None
    label: str | None
    confidence: float | None
    region_id: int
    photo_id: int
    width: int
    height: int
    caption: str
    matches: int = 1
    refined_box: tuple[float, float, float, float] | None = None
    refinement: str = "not requested"  # see retrieval.localize.refine.REFINEMENTS

    def to_dict(self) -> dict[str, object]:
        """The JSON form: documented keys first, extra detail after."""
        data = asdict(self)
        data["box"] = list(self.box) if self.box is not None else None
        data["refined_box"] = list(self.refined_box) if self.refined_box is not None else None
        return data


def _result(region: Region, photo: Photo, score: float) -> SearchResult:
    return SearchResult(
        rank=0,
        score=round(float(score), 6),
        image=photo.path,
        kind=region.kind,
        box=region.shown_box,
        label=region.label,
        confidence=region.shown_confidence,
        region_id=region.id,
        photo_id=photo.id,
        width=photo.width,
        height=photo.height,
        caption=photo.caption,
    )


def check_query(text: str | None, image: object) -> None:
    """Refuse a malformed query before any model work: exactly one of text and image."""
    if (text is None) == (image is None):
        raise QueryError("Give exactly one query: a text or an image.")
    if text is not None:
        normalise_query(text)  # raises on an empty query


class Searcher:
    """Searches an index folder by text or by example image.

    The CLIP model defaults to the one recorded in the index; another model is refused
    unless its vectors match (the same weights from another path).
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
    ) -> None:
        self.store = Store(index_dir)
        self.params = params or IndexParams()
        self._model = (clip_model, device, precision, backend)
        self._embedder = embedder
        self._checked = False
        self._generation = -1
        self._index: VectorIndex | None = None
        if "clip_model" in self.store.meta():
            self.embedder  # noqa: B018 - load and check the model now, not at the first query

    @property
    def embedder(self) -> ClipEmbedder:
        """The CLIP model: the index's own unless another was given, checked against it.

        An index whose first batch is not committed yet records no model; until it does,
        searches return nothing and no model is loaded.
        """
        meta = self.store.meta() if not self._checked else {}
        if self._embedder is None:
            clip_model, device, precision, backend = self._model
            if "clip_model" not in meta:
                raise StoreError(
                    f"The index at {self.store.dir} holds no photos yet: run 'objsearch index' "
                    "first."
                )
            self._embedder = ClipEmbedder(
                resolve_clip_model(clip_model, meta["clip_model"]),
                resolve_device(device),
                precision=precision,
                backend=backend,
            )
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
    def vectors(self) -> VectorIndex:
        """The FAISS index for the latest committed generation (reloaded when it moves on)."""
        generation = self.store.generation
        if self._index is None or generation != self._generation:
            self._index, _ = self.store.load_vectors(self.params, persist=True)
            self._generation = generation
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
            return self.embedder.embed_text(normalise_query(text))
        return self.embedder.embed_image(self.query_image(image))

    @staticmethod
    def query_image(image: str | os.PathLike[str] | Image.Image) -> Image.Image:
        """A query image, decoded: a path (``~`` expanded) or an already-open image."""
        if isinstance(image, Image.Image):
            return image
        try:
            return load_query_image(image)
        except DecodeError as exc:
            raise QueryError(f"Cannot use {os.fspath(image)} as a query image: {exc}") from None

    def search(
        self,
        text: str | None = None,
        image: str | os.PathLike[str] | Image.Image | None = None,
        top_k: int = 10,
        *,
        kind: RegionKind | None = None,
    ) -> list[SearchResult]:
        """Top ``top_k`` photos for the query, each shown by its best region.

        ``kind="object"`` searches object crops only, ``kind="image"`` whole photos only.
        An index without committed photos gives an empty list (after the query is checked).
        """
        if top_k < 1:
            raise QueryError("top-k must be at least 1.")
        if kind not in (None, KIND_OBJECT, KIND_IMAGE):
            raise QueryError(f"kind must be 'object', 'image' or None, not {kind!r}.")
        check_query(text, image)
        if image is not None:
            image = self.query_image(image)
        if self.empty:
            return []
        query = self.query_vector(text, image)
        return self.search_vector(query, top_k, kind=kind)

    def search_vector(
        self, query: np.ndarray, top_k: int = 10, *, kind: RegionKind | None = None
    ) -> list[SearchResult]:
        """Grouped results for an already-embedded query vector."""
        index = self.vectors
        total = index.ntotal
        k = min(total, top_k * 8 + 32)
        while True:
            scores, ids = index.search(query[None, :], k)
            hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            rows = self.store.regions_with_photos([i for i, _ in hits])
            best: dict[int, list] = {}  # photo id -> [score, region, photo, matches]
            for region_id, score in hits:
                found = rows.get(region_id)
                if found is None:
                    continue  # removed since the vectors were loaded
                region, photo = found
                if kind and region.kind != kind:
                    continue
                if photo.id in best:
                    best[photo.id][3] += 1  # hits come best-first: the first one stays
                else:
                    best[photo.id] = [score, region, photo, 1]
            if len(best) >= top_k or k >= total:
                break
            k = min(total, k * 4)
        top = sorted(best.values(), key=lambda entry: -entry[0])[:top_k]
        ranked = []
        for rank, (score, region, photo, matches) in enumerate(top, 1):
            result = _result(region, photo, score)
            result.rank, result.matches = rank, matches
            ranked.append(result)
        return ranked
