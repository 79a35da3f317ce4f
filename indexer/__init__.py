"""objsearch indexing: photo folders -> detected regions -> CLIP vectors -> SQLite + FAISS.

The small public API apps use::

    from indexer import Indexer
    stats = Indexer("my-index", clip_model="openai/clip-vit-base-patch32").index(["~/Photos"])

Layers (imports only point down): ``settings``/``errors``/``geometry`` -> ``media``,
``models``, ``store`` -> ``indexing``. See docs/architecture.md.
"""

from importlib import import_module

from .errors import (
    CorruptIndexError,
    IndexLockedError,
    ModelLoadError,
    ObjsearchError,
    QueryError,
    StoreError,
    UsageError,
)
from .settings import DetectOptions, RaySettings

# Imported on first use (PEP 562): a text search imports ``indexer.store`` and
# ``indexer.models.text`` only, never the indexing pipeline, PyTorch or the detector.
_LAZY = {
    "ClipEmbedder": ".models.clip",
    "Detections": ".geometry",
    "Detector": ".models.detector",
    "IndexStats": ".indexing",
    "Indexer": ".indexing",
    "Store": ".store",
}

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


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
