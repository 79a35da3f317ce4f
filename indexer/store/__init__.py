"""The index folder: SQLite (source of truth), the derived FAISS file, the writer lock.

:mod:`.schema` the tables, :mod:`.records` the typed records a batch writes,
:mod:`.database` the :class:`Store`, made of :mod:`.engine` (open, schema, meta, lock),
:mod:`.reads`, :mod:`.writes` and :mod:`.vector_file` (the FAISS file's lifecycle);
:mod:`.folder` and :mod:`.write_errors` whether a folder can be written and what a failed
write means; :mod:`.vectors` FAISS, :mod:`.live` the searchable main segment + delta -
tombstones, :mod:`.lock` the writer and vectors locks, :mod:`.migrations` schema upgrades,
:mod:`.doctor` status checks and repair, :mod:`.salvage` a damaged database's rows.
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
from .vector_codec import decode_vector, decode_vectors
from .vectors import IndexParams, VectorIndex

__all__ = [
    "decode_vector",
    "decode_vectors",
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
