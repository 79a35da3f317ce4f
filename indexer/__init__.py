"""objsearch indexing: photo folders -> detected regions -> CLIP vectors -> SQLite + FAISS.

The small public API apps use::

    from indexer import Indexer
    stats = Indexer("my-index", clip_model="openai/clip-vit-base-patch32").index(["~/Photos"])
"""

from .config import DetectOptions
from .detect import Detections, Detector
from .embed import ClipEmbedder
from .errors import IndexLockedError, ModelLoadError, ObjsearchError, QueryError, StoreError
from .pipeline import Indexer, IndexStats
from .store import Store

__all__ = [
    "ClipEmbedder",
    "DetectOptions",
    "Detections",
    "Detector",
    "IndexLockedError",
    "IndexStats",
    "Indexer",
    "ModelLoadError",
    "ObjsearchError",
    "QueryError",
    "Store",
    "StoreError",
]
