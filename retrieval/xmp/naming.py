"""Where a photo's sidecar lives, by the naming convention the user's app expects."""

from __future__ import annotations

import os

APPEND = "append"  # photo.jpg -> photo.jpg.xmp: darktable, digiKam, Capture One (default)
REPLACE = "replace"  # photo.cr2 -> photo.xmp: Lightroom, Bridge, Camera Raw (raw files)
NAMINGS = (APPEND, REPLACE)


def sidecar_path(photo_path: str, naming: str = APPEND) -> str:
    """The sidecar beside ``photo_path``: ``photo.jpg.xmp`` (append) or ``photo.xmp`` (replace)."""
    if naming == APPEND:
        return photo_path + ".xmp"
    if naming == REPLACE:
        return os.path.splitext(photo_path)[0] + ".xmp"
    raise ValueError(f"unknown sidecar naming {naming!r}: use {' or '.join(NAMINGS)}")
