"""Decoded photos -> regions with vectors: detect, crop, embed. Computes only, stores nothing.

One detector batch runs over the photos, then CLIP embeds every whole photo and every crop
in pooled batches (crops of many photos share a CLIP batch). Boxes come back in
original-photo pixels, whatever size the photo was decoded at.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from ..errors import ObjsearchError, first_line
from ..geometry import Detections, crop_box
from ..media.decode import DecodedPhoto
from ..models.clip import ClipEmbedder
from ..models.detector import Detector
from ..settings import DetectOptions
from ..store.records import FailureRecord, NewPhoto, NewRegion
from ..store.schema import KIND_IMAGE, KIND_OBJECT
from .caption import caption
from .failures import STAGE_MODEL
from .timing import Timings, timed


def kept_detections(photo: DecodedPhoto, raw: Detections, options: DetectOptions) -> Detections:
    """Raw detections on the decoded image -> filtered boxes in original pixels."""
    sx, sy = photo.scale
    return raw.scaled(sx, sy).filtered(options, photo.width, photo.height)


def object_crops(photo: DecodedPhoto, det: Detections, padding: float) -> list[Image.Image]:
    """The decoded-image crop of every kept box, widened by ``padding``."""
    return [photo.image.crop(crop_box(b, padding, photo.image.size, photo.scale)) for b in det.xyxy]


def _floats(box: Sequence[float]) -> tuple[float, float, float, float]:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def photo_record(photo: DecodedPhoto, det: Detections, vectors: Sequence | np.ndarray) -> NewPhoto:
    """The store record of one photo: its whole-photo region first, then its objects."""
    whole = (0.0, 0.0, float(photo.width), float(photo.height))
    regions = [NewRegion(KIND_IMAGE, whole, vectors[0])]
    for vec, box, conf, label in zip(
        vectors[1:], det.xyxy, det.confidence, det.labels, strict=True
    ):
        regions.append(NewRegion(KIND_OBJECT, _floats(box), vec, label, float(conf)))
    return NewPhoto(
        path=photo.path,
        size=photo.size,
        mtime_ns=photo.mtime_ns,
        width=photo.width,
        height=photo.height,
        content_hash=photo.content_hash,
        caption=caption(det.labels),
        regions=regions,
        metadata=photo.metadata,
    )


def photo_records(
    photos: Sequence[DecodedPhoto], kept: Sequence[Detections], vectors: np.ndarray
) -> list[NewPhoto]:
    """The records of a batch whose vectors are stacked photo by photo: whole, then objects."""
    out: list[NewPhoto] = []
    row = 0
    for photo, det in zip(photos, kept, strict=True):
        out.append(photo_record(photo, det, vectors[row : row + 1 + len(det)]))
        row += 1 + len(det)
    return out


class RegionEmbedder:
    """Detect objects and embed photos + crops; ``detector=None`` embeds whole photos only."""

    def __init__(
        self,
        embedder: ClipEmbedder,
        detector: Detector | None,
        options: DetectOptions,
        timings: Timings | None = None,
    ) -> None:
        self.embedder = embedder
        self.detector = detector
        self.options = options
        self.timings = timings if timings is not None else defaultdict(float)

    def embed(self, photos: Sequence[DecodedPhoto]) -> list[NewPhoto]:
        """One :class:`NewPhoto` per photo, in order."""
        with timed(self.timings, "detect"):
            if self.detector is not None and photos:
                raw = self.detector.detect([p.image for p in photos], self.options)
            else:
                raw = [Detections.empty() for _ in photos]
        images: list[Image.Image] = []
        kept: list[Detections] = []
        with timed(self.timings, "crop"):
            for photo, det in zip(photos, raw, strict=True):
                det = kept_detections(photo, det, self.options)
                kept.append(det)
                images.append(photo.image)
                images += object_crops(photo, det, self.options.padding)
        return photo_records(photos, kept, self._vectors(images))

    def _vectors(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed in the embedder's batches, timing preprocessing and the model apart."""
        size = self.embedder.batch_size
        parts = [np.zeros((0, self.embedder.dim), np.float32)]
        for i in range(0, len(images), size):
            with timed(self.timings, "preprocess"):
                inputs = self.embedder.preprocess(images[i : i + size])
            with timed(self.timings, "embed"):
                parts.append(self.embedder.embed_inputs(inputs))
        return np.concatenate(parts)


EmbedFn = Callable[[Sequence[DecodedPhoto]], list[NewPhoto]]


def embed_isolating(
    embed: EmbedFn, photos: Sequence[DecodedPhoto]
) -> tuple[list[NewPhoto], list[FailureRecord]]:
    """``embed(photos)``; when the batch fails, each photo alone, recording the ones that fail.

    One bad photo must not cost its batch-mates their regions. Errors objsearch raises on
    purpose (a model that cannot load, or that differs from the index's) stop the run.
    """
    if not photos:
        return [], []
    try:
        return embed(photos), []
    except ObjsearchError:
        raise
    except Exception:
        if len(photos) == 1:
            raise
    out: list[NewPhoto] = []
    failures: list[FailureRecord] = []
    for photo in photos:
        try:
            out += embed([photo])
        except ObjsearchError:
            raise
        except Exception as exc:
            reason = f"model failed on this photo: {first_line(exc)}"
            failures.append(FailureRecord(photo.path, STAGE_MODEL, reason))
    return out, failures
