"""Pixels of indexed photos, served only while a file still holds what was indexed.

The server never takes a path from a client: it looks a photo up by id and reads the path
the index stored. Before any pixel leaves the server the file's bytes are hashed and
compared with the content hash recorded at indexing, so a file that was replaced since
(e.g. by a symlink that now points outside the indexed folders) is answered like an unknown
id, and nothing about it is revealed.
"""

from __future__ import annotations

import io

from PIL import Image

from indexer.media.decode import DecodedPhoto, DecodeError, hash_bytes, open_image
from indexer.settings import DEFAULT_MAX_MEGAPIXELS
from indexer.store import Photo

JPEG_QUALITY = 88


class NotIndexed(LookupError):
    """An id the index does not hold, or a file that no longer holds what was indexed."""


def read_indexed(photo: Photo, decode_side: int | None) -> DecodedPhoto:
    """Decode an indexed photo after checking its bytes against the stored hash."""
    try:
        with open(photo.path, "rb") as fh:
            data = fh.read(photo.size + 1)  # never more than the indexed file's size
    except OSError:
        raise NotIndexed(photo.id) from None
    if len(data) != photo.size or hash_bytes(data) != photo.content_hash:
        raise NotIndexed(photo.id)
    try:
        image, width, height, _ = open_image(data, decode_side=decode_side)
    except DecodeError:
        raise NotIndexed(photo.id) from None
    return DecodedPhoto(
        photo.path, image, width, height, photo.content_hash, photo.size, photo.mtime_ns
    )


def decode_upload(data: bytes, decode_side: int | None = None) -> DecodedPhoto:
    """Decode uploaded bytes with the indexer's bomb guard; raises :class:`DecodeError`."""
    image, width, height, _ = open_image(
        data, max_megapixels=DEFAULT_MAX_MEGAPIXELS, decode_side=decode_side
    )
    return DecodedPhoto("upload", image, width, height, hash_bytes(data), len(data), 0)


def fit(image: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale (never upscale) so the long side is at most ``max_side``."""
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def crop(photo: DecodedPhoto, box: tuple[float, float, float, float]) -> Image.Image:
    """The region ``box`` (original pixels) cut from a possibly reduced decode."""
    sx, sy = photo.scale
    x1, y1, x2, y2 = box
    left, top = max(0, int(x1 / sx)), max(0, int(y1 / sy))
    right = min(photo.image.width, max(left + 1, round(x2 / sx)))
    bottom = min(photo.image.height, max(top + 1, round(y2 / sy)))
    return photo.image.crop((left, top, right, bottom))


def jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
