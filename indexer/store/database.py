"""The :class:`Store`: one object for an index folder, assembled from one module per job.

See :mod:`.schema` for the folder's layout. The jobs, each in its own module:

* :mod:`.engine` opens the SQLite database (schema, upgrades, meta, the writer lock);
* :mod:`.reads` and :mod:`.writes` are the SQLite queries and the batch transaction;
* :mod:`.vector_file` is the FAISS file's lifecycle (load, rebuild, publish, tombstones,
  compaction);
* :mod:`.folder` says whether a folder can be written, and :mod:`.write_errors` what a
  failed write means.

Every change to regions happens in one SQLite transaction that also bumps the
``generation`` counter in ``meta`` and records the deleted regions that the FAISS file
still holds (tombstones). A crash at any moment costs at most a rebuild, never a wrong
answer; a file that is missing, damaged or not this store's is rebuilt.
"""

from __future__ import annotations

from .folder import check_creatable, read_only_filesystem, writable_folder
from .reads import IN_CHUNK, chunked
from .vector_file import VectorFile, file_stamp, remove_temp_files
from .writes import StoreWrites

__all__ = [
    "IN_CHUNK",
    "Store",
    "check_creatable",
    "chunked",
    "file_stamp",
    "read_only_filesystem",
    "remove_temp_files",
    "writable_folder",
]


class Store(StoreWrites, VectorFile):
    """Opens (or creates) an index folder. One writer at a time, any number of readers."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
