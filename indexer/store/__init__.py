"""The index folder: SQLite (source of truth), the derived FAISS file, the writer lock.

:mod:`.schema` the tables, :mod:`.records` the typed records a batch writes,
:mod:`.database` the :class:`Store`, :mod:`.vectors` FAISS, :mod:`.live` the searchable
main segment + delta - tombstones, :mod:`.lock` the writer lock,
:mod:`.migrations` schema upgrades, :mod:`.doctor` status checks and repair.
"""

from .database import Store, remove_temp_files
from .live import LiveVectors
from .records import (
    BatchChanges,
    Counts,
    FailureRecord,
    NewPhoto,
    NewRegion,
    NewText,
    PhotoMove,
    PhotoState,
    PhotoText,
    PhotoTouch,
    UnreadPhoto,
)
from .schema import (
    DB_NAME,
    FAISS_NAME,
    KIND_IMAGE,
    KIND_OBJECT,
    KIND_TEXT,
    LOCK_NAME,
    Photo,
    Region,
    TextRegion,
)
from .vectors import IndexParams, VectorIndex

__all__ = [
    "DB_NAME",
    "FAISS_NAME",
    "KIND_IMAGE",
    "KIND_OBJECT",
    "KIND_TEXT",
    "LOCK_NAME",
    "BatchChanges",
    "Counts",
    "FailureRecord",
    "IndexParams",
    "LiveVectors",
    "NewPhoto",
    "NewRegion",
    "NewText",
    "Photo",
    "PhotoMove",
    "PhotoState",
    "PhotoText",
    "PhotoTouch",
    "Region",
    "Store",
    "TextRegion",
    "UnreadPhoto",
    "VectorIndex",
    "remove_temp_files",
]
