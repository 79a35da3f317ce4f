"""What the server does, without HTTP: search, look photos up, make pictures.

One ``Service`` holds the warm CLIP model and the ``Searcher`` for the server's lifetime. The
searcher follows the index while ``objsearch index`` writes it (it reloads FAISS when the
store's generation moves on). Request handlers run in a thread pool: the searcher and its
models are safe to share between threads (each model runs one call at a time under its own
lock, see :mod:`indexer.models.lifecycle`); SQLite reads use a session per call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from indexer.errors import QueryError
from indexer.media.decode import DecodedPhoto, DecodeError
from indexer.models.clip import ClipEmbedder
from indexer.models.lifecycle import ModelChoice
from indexer.store import KIND_OBJECT, Photo, Region, TextRegion
from indexer.store.doctor import check
from retrieval.localize.refine import LOCALIZE_DECODE_SIDE, localize_prompts, search_refined
from retrieval.localize.render import draw_boxes
from retrieval.search import Searcher, SearchRequest
from retrieval.serve import photos as px
from retrieval.serve.thumbs import ThumbCache

if TYPE_CHECKING:
    from indexer.indexing.watch import Watcher

API = "/api/v1"
THUMB_SIZE = 256


def urls(data: dict[str, Any]) -> dict[str, Any]:
    """Add ``thumb_url`` and ``photo_url`` to a result's JSON.

    A line of text has no crop of its own (it is not a vector region): its thumbnail is
    its photo, on which the page draws the line's box.
    """
    if data.get("region_id") is None:
        data["thumb_url"] = f"{API}/photos/{data['photo_id']}/image?max_side={THUMB_SIZE}"
    else:
        data["thumb_url"] = f"{API}/regions/{data['region_id']}/thumb"
    data["photo_url"] = f"{API}/photos/{data['photo_id']}"
    return data


def text_dict(line: TextRegion) -> dict[str, Any]:
    """A line of text read in a photo, as the photo's JSON lists it."""
    return {
        "kind": line.kind,
        "box": list(line.shown_box),
        "text": line.text,
        "confidence": line.shown_confidence,
    }


def region_dict(region: Region) -> dict[str, Any]:
    is_object = region.kind == KIND_OBJECT
    return urls(
        {
            "region_id": region.id,
            "photo_id": region.photo_id,
            "kind": region.kind,
            "box": [round(v, 2) for v in region.box] if is_object else None,
            "label": region.label,
            "confidence": None if region.confidence is None else round(region.confidence, 4),
        }
    )


class Service:
    """Searches and pictures for one index folder."""

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        choice: ModelChoice = ModelChoice(),
        embedder: ClipEmbedder | None = None,
    ) -> None:
        self.searcher = Searcher(index_dir, **asdict(choice), embedder=embedder)
        self.store = self.searcher.store
        self.thumbs = ThumbCache(self.store.dir)
        self.watcher: Watcher | None = None
        """The ``--watch`` folder watcher, whose progress the status shows."""
        if not self.searcher.empty:  # an index still empty loads CLIP once it records one
            # One model for text and images alike (a server needs both), and the first
            # call's costs go to start-up.
            self.searcher.embedder.embed_text("warm up")

    def close(self) -> None:
        self.searcher.close()

    # -- search --------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[dict[str, Any]]:
        """A request's results as the API's JSON (refined when it asks)."""
        return [urls(r.to_dict()) for r in search_refined(self.searcher, request)]

    def similar(self, request: SearchRequest) -> list[dict[str, Any]]:
        """Photos with regions like ``request.like_region`` (404 when it is not indexed)."""
        assert request.like_region is not None
        if self.store.region_vector(request.like_region) is None:
            raise px.NotIndexed(request.like_region)
        return self.search(request)

    # -- photos and regions --------------------------------------------------------------
    def photo(self, photo_id: int) -> tuple[Photo, list[Region]]:
        found = self.store.photo_with_regions(photo_id)
        if found is None:
            raise px.NotIndexed(photo_id)
        return found

    def photo_info(self, photo_id: int) -> dict[str, Any]:
        photo, regions = self.photo(photo_id)
        return {
            "photo_id": photo.id,
            "image": photo.path,
            "width": photo.width,
            "height": photo.height,
            "caption": photo.caption,
            "indexed_at": photo.indexed_at,
            "image_url": f"{API}/photos/{photo.id}/image",
            "regions": [region_dict(r) for r in regions],
            "texts": [
                text_dict(t) for t in self.store.texts_of_photos([photo.id]).get(photo.id, [])
            ],
        }

    def photo_jpeg(self, photo_id: int, max_side: int | None) -> bytes:
        photo, _ = self.photo(photo_id)
        decoded = px.read_indexed(photo, decode_side=max_side)
        return px.jpeg_bytes(px.fit(decoded.image, max_side))

    def thumb_jpeg(self, region_id: int, size: int) -> bytes:
        found = self.store.regions_with_photos([region_id]).get(region_id)
        if found is None:
            raise px.NotIndexed(region_id)
        region, photo = found

        def make() -> bytes:
            decoded = px.read_indexed(photo, decode_side=max(4 * size, 512))
            return px.jpeg_bytes(px.fit(px.crop(decoded, region.box), size))

        return self.thumbs.get(region_id, size, make)

    def status(self) -> dict[str, Any]:
        """The index's health, and under ``watch`` the watcher's progress (None: none)."""
        watch = self.watcher.snapshot() if self.watcher is not None else None
        return check(self.store).to_dict() | {"watch": watch}

    # -- localisation --------------------------------------------------------------------
    def localize(
        self,
        prompts: Sequence[str],
        *,
        photo_id: int | None = None,
        upload: bytes | None = None,
        threshold: float = 0.5,
        max_windows: int = 128,
        annotate: bool = False,
        heatmap: bool = False,
    ) -> dict[str, Any]:
        """Boxes for each prompt on an indexed photo or an upload (and the drawing).

        ``heatmap`` adds each prompt's heat grid (values 0-1, row by row) and the size of
        its cells in original pixels, which the page draws over the photo itself: an
        image URL would need ``data:`` images, which its policy forbids.
        """
        prompts = [p.strip() for p in prompts if p.strip()]
        if not prompts:
            raise QueryError("Give at least one non-empty prompt.")
        if (photo_id is None) == (upload is None):
            raise QueryError("Give exactly one of photo_id or an uploaded image.")
        if upload is not None:
            decoded = decode_image_or_400(upload, LOCALIZE_DECODE_SIDE)
        else:
            photo, _ = self.photo(int(photo_id))  # type: ignore[arg-type]
            decoded = px.read_indexed(photo, decode_side=LOCALIZE_DECODE_SIDE)
        image, found = localize_prompts(
            decoded,
            prompts,
            self.searcher.embedder,  # type: ignore[arg-type]
            threshold=threshold,
            max_windows=max_windows,
        )
        body: dict[str, Any] = {
            "photo_id": photo_id,
            "width": decoded.width,
            "height": decoded.height,
            "prompts": [f.to_dict() for f in found],
        }
        if heatmap:
            for entry, f in zip(body["prompts"], found, strict=True):
                entry["heatmap"] = heat_dict(f.result.heatmap, f.result.patch, decoded.scale)
        if annotate:
            drawing = draw_boxes(image, [(f.prompt, f.result.boxes) for f in found])
            body["annotated_png_base64"] = _b64(px.png_bytes(drawing))
        return body


def decode_image_or_400(data: bytes, decode_side: int | None = None) -> DecodedPhoto:
    try:
        return px.decode_upload(data, decode_side)
    except DecodeError as exc:
        raise QueryError(f"The upload is not a usable image: {exc}.") from None


def heat_dict(heat: Any, patch: int, scale: tuple[float, float]) -> dict[str, Any]:
    """A localisation's heat grid for JSON: rows of values and the cell size in pixels."""
    sx, sy = scale
    return {
        "cell": [round(patch * sx, 2), round(patch * sy, 2)],
        "values": [[round(float(v), 3) for v in row] for row in heat],
    }


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")
