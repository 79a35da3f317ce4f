"""Crop thumbnails, made once and kept as JPEG files inside the index folder.

A results grid asks for the same crops again and again; decoding a 12 MP photo for a 256 px
crop each time would dominate the server's work. Region ids are never reused, so
``thumbs/<region id>-<size>.jpg`` can never show another region, and a re-indexed photo's
new regions get new files. Writes are atomic (temporary file, then rename), so concurrent
requests for one thumbnail never see half a file. A read-only index folder still works:
thumbnails are then made per request and not kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

THUMBS_DIR = "thumbs"


class ThumbCache:
    """JPEG bytes per (region id, size), on disk under ``<index>/thumbs``."""

    def __init__(self, index_dir: str) -> None:
        self.dir = os.path.join(index_dir, THUMBS_DIR)

    def path(self, region_id: int, size: int) -> str:
        return os.path.join(self.dir, f"{int(region_id)}-{int(size)}.jpg")

    def get(self, region_id: int, size: int, make: Callable[[], bytes]) -> bytes:
        """The cached thumbnail, or ``make()``'s bytes, stored for next time."""
        path = self.path(region_id, size)
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError:
            pass
        data = make()
        self._store(path, data)
        return data

    def _store(self, path: str, data: bytes) -> None:
        try:
            os.makedirs(self.dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".thumb-", suffix=".tmp", dir=self.dir)
        except OSError:
            return  # read-only or full: serve without caching
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
