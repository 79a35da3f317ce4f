"""objsearch indexing: photo folders -> detected regions -> CLIP vectors -> SQLite + FAISS.

The small public API apps use::

    from indexer import Indexer
    stats = Indexer("my-index", clip_model="openai/clip-vit-base-patch32").index(["~/Photos"])

Layers (imports only point down): ``settings``/``errors``/``geometry`` -> ``media``,
``models``, ``store`` -> ``indexing``. See docs/architecture.md.
"""

from .errors import (
    CorruptIndexError,
    IndexLockedError,
    ModelLoadError,
    ObjsearchError,
    QueryError,
    StoreError,
    UsageError,
)
from .geometry import Detections
from .indexing import Indexer, IndexStats
from .models import ClipEmbedder, Detector
from .settings import DetectOptions, RaySettings
from .store import Store

__all__ = [
    "ClipEmbedder",
    "CorruptIndexError",
    "DetectOptions",
    "Detections",
    "Detector",
    "IndexLockedError",
    "IndexStats",
    "Indexer",
    "ModelLoadError",
    "ObjsearchError",
    "QueryError",
    "RaySettings",
    "Store",
    "StoreError",
    "UsageError",
]
