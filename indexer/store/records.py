"""Typed records that cross the store's boundary: what a batch writes, what reads return."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..media.metadata import PhotoMetadata


@dataclass
class NewRegion:
    """A region ready to store: box in original pixels, unit vector."""

    kind: str
    box: tuple[float, float, float, float]
    vector: np.ndarray
    label: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class NewText:
    """A text line ready to store: box in original pixels, the words read, confidence."""

    box: tuple[float, float, float, float]
    text: str
    confidence: float


@dataclass(frozen=True)
class PhotoText:
    """The text read in an already stored photo (``--ocr`` over an existing index)."""

    photo_id: int
    lines: list[NewText]
    engine: str


@dataclass(frozen=True)
class UnreadPhoto:
    """A stored photo whose text has not been read yet."""

    id: int
    path: str
    content_hash: str


@dataclass
class NewPhoto:
    """A photo ready to store with all of its regions."""

    path: str
    size: int
    mtime_ns: int
    width: int
    height: int
    content_hash: str
    caption: str
    regions: list[NewRegion] = field(default_factory=list)
    metadata: PhotoMetadata | None = None
    texts: list[NewText] = field(default_factory=list)
    text_engine: str | None = None
    """The OCR engine that read this photo (its text lines are ``texts``, maybe none);
    None when its text was not read."""
    text_error: str | None = None
    """Why reading its text failed (recorded as a failure; the photo is stored unread)."""


@dataclass
class BatchChanges:
    """What one committed batch changed: region ids added (with their vectors) and removed,
    and the store's new generation."""

    added_ids: np.ndarray
    added_vectors: np.ndarray
    removed_ids: np.ndarray
    generation: int


@dataclass(slots=True)
class PhotoState:
    """What the store knows of one photo file (a plan compares it with the file's stat).

    Not frozen: a run reads one per photo, and a frozen dataclass takes twice as long to
    make (200,000 of them: about a second on a busy 2-core machine).
    """

    id: int
    size: int
    mtime_ns: int
    content_hash: str
    has_metadata: bool = True
    """False for photos indexed before metadata was recorded: the next run reads it."""


@dataclass(frozen=True)
class Counts:
    photos: int
    objects: int
    images: int
    failures: int
    texts: int = 0
    """Text lines read in photos (not vector regions: see ``regions``)."""
    read: int = 0
    """Photos whose text has been read."""

    @property
    def regions(self) -> int:
        """Regions with a vector (what FAISS holds)."""
        return self.objects + self.images


@dataclass(frozen=True)
class FailureRecord:
    """A file that could not be indexed: at which stage, and why (shown to people)."""

    path: str
    stage: str
    reason: str


@dataclass(frozen=True)
class PhotoMove:
    """A known photo found under a new path (same bytes): only its path and stat change."""

    photo_id: int
    path: str
    size: int
    mtime_ns: int
    metadata: PhotoMetadata | None = None


@dataclass(frozen=True)
class PhotoTouch:
    """A known photo whose stat changed but whose bytes did not (or whose metadata is new)."""

    photo_id: int
    size: int
    mtime_ns: int
    metadata: PhotoMetadata | None = None
