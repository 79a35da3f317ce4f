"""Read a photo file once into an RGB image at the size the models need.

Decoding is the one place that touches file bytes: it hashes them (for move and change
detection), applies EXIF orientation, takes the first frame of animations, flattens alpha,
maps CMYK/16-bit/palette modes to RGB, reads the EXIF metadata (date taken, camera, GPS:
see :mod:`.metadata`) and refuses decompression bombs. HEIC/HEIF photos open through
pillow-heif, AVIF through PIL. Large JPEGs are
decoded at reduced scale with PIL's ``draft`` (DCT scaling), which is several times faster
than a full decode followed by a resize; ``scale`` maps decoded pixels back to original
ones so stored boxes are always in original-photo coordinates.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..settings import DEFAULT_DECODE_SIDE, DEFAULT_MAX_MEGAPIXELS, expand_path
from .metadata import PhotoMetadata, metadata_of

# The megapixel limit below replaces PIL's own bomb guard, which warns or raises at its own
# fixed threshold; objsearch decides with a configurable limit and a clear message.
Image.MAX_IMAGE_PIXELS = None


def _register_heif() -> None:
    """Let PIL open HEIC/HEIF (phone photos) through pillow-heif; AVIF is PIL's own.

    pillow-heif applies the HEIF rotation on decode and resets the EXIF orientation, so
    its images come out upright like every other format.
    """
    try:
        import pillow_heif
    except ImportError:  # optional: without it HEIC files fail with a per-file reason
        return
    pillow_heif.register_heif_opener()


_register_heif()


def _pil_open() -> Callable[[str | IO[bytes]], Image.Image]:
    """PIL's own ``Image.open``, even where another library has wrapped it.

    ultralytics replaces ``Image.open`` with a wrapper that, on a file PIL cannot identify,
    tries to pip-install a HEIF plugin and otherwise raises ``ModuleNotFoundError``: every
    corrupt photo would then print a warning and fail with "No module named 'pi_heif'" (or
    reach for the network). The wrapper keeps the original as ``_image_open``.
    """
    opener = Image.open
    for _ in range(4):  # follow a short chain of wrappers, never loop
        if getattr(opener, "__module__", Image.__name__) == Image.__name__:
            break
        inner = getattr(sys.modules.get(opener.__module__), "_image_open", None)
        if not callable(inner) or inner is opener:
            break
        opener = inner
    return opener


class DecodeError(Exception):
    """A photo that cannot be used; the message is the per-file reason shown to people."""


@dataclass
class DecodedPhoto:
    """An RGB image plus what the store records about the original file."""

    path: str
    image: Image.Image
    width: int
    height: int
    content_hash: str
    size: int
    mtime_ns: int
    metadata: PhotoMetadata | None = None

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per decoded pixel along x and y (>= 1 when decoding was reduced)."""
        return self.width / self.image.width, self.height / self.image.height


def hash_bytes(data: bytes) -> str:
    """Content hash used to recognise the same photo under a new path or mtime."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA")
_PREMULTIPLIED_MODES = ("RGBa", "La")  # colour already multiplied by alpha


def _deep_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit and float pixels in 8 bits: the used range stretched, a flat one kept."""
    arr = np.asarray(image, dtype=np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if hi > 255 or lo < 0:  # beyond 8 bits (convert("RGB") would clip it all to white)
        if hi > lo:
            arr = (arr - lo) / (hi - lo) * 255.0
        elif image.mode.startswith("I;16"):
            arr = arr / 257.0  # a flat 16-bit image keeps its absolute brightness
        else:
            arr = np.zeros_like(arr)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: the one colour policy of indexing and querying.

    Transparency is composited onto white; deep (16-bit, 32-bit, float) pixels are
    stretched into 8 bits; premultiplied modes, which PIL cannot convert, keep their
    stored colour. Index time and localisation both call this, so a photo embeds alike.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _DEEP_MODES:
        return _deep_to_rgb(image)
    if mode in _PREMULTIPLIED_MODES:
        arr = np.asarray(image)
        colour = arr[..., :3] if mode == "RGBa" else np.repeat(arr[..., :1], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(colour))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(
    data: bytes,
    *,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    decode_side: int | None = DEFAULT_DECODE_SIDE,
    mtime_ns: int | None = None,
) -> tuple[Image.Image, int, int, PhotoMetadata | None]:
    """Decode bytes into (RGB image, original width, original height, metadata), upright.

    ``decode_side`` lets JPEG decoding skip resolution the models will never see: the
    decoded image keeps at least that many pixels on its long side. ``None`` decodes fully.
    With ``mtime_ns`` (the file's) the EXIF block PIL parsed from the header is read into
    :class:`PhotoMetadata` as well; otherwise the metadata is None.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _pil_open()(io.BytesIO(data))
    except UnidentifiedImageError:
        raise DecodeError("not a readable image (unrecognised or corrupt header)") from None
    except Exception as exc:  # PIL raises many types on malformed headers
        raise DecodeError(f"not a readable image ({exc})") from None
    w, h = image.size
    if w <= 0 or h <= 0:
        raise DecodeError("image has zero width or height")
    megapixels = w * h / 1e6
    if max_megapixels and megapixels > max_megapixels:
        raise DecodeError(
            f"image too large: {w}x{h} = {megapixels:.0f} MP is over the {max_megapixels:g} MP "
            "limit (raise it with --max-megapixels)"
        )
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    metadata = None if mtime_ns is None else metadata_of(image, mtime_ns)
    if getattr(image, "is_animated", False):
        image.seek(0)  # first frame of GIF/WebP/APNG animations
    if decode_side and image.format == "JPEG" and max(w, h) > 2 * decode_side:
        # DCT scaling picks the smallest scale that keeps at least the requested size.
        ratio = decode_side / max(w, h)
        image.draft("RGB", (max(1, int(w * ratio)), max(1, int(h * ratio))))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            image = ImageOps.exif_transpose(image) if orientation != 1 else image
            image = to_rgb(image)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(f"corrupt or truncated image data ({exc})") from None
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return image, w, h, metadata


@dataclass(frozen=True)
class FileDigest:
    """A file's bytes identified without decoding them (what move and touch detection need)."""

    path: str
    content_hash: str
    size: int
    mtime_ns: int
    metadata: PhotoMetadata | None = None


def read_digest(path: str) -> FileDigest:
    """Read and hash one file, and read its metadata from the header (no pixels decoded);
    raises :class:`DecodeError` when it cannot be read."""
    data, st = _read_file(path)
    metadata = _header_metadata(io.BytesIO(data), st.st_mtime_ns)
    return FileDigest(path, hash_bytes(data), st.st_size, st.st_mtime_ns, metadata)


def _read_file(path: str) -> tuple[bytes, os.stat_result]:
    """The file's bytes and the stat of the very file read, or a :class:`DecodeError`."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            return fh.read(), st
    except FileNotFoundError:
        raise DecodeError("the file vanished before it could be read") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except IsADirectoryError:
        raise DecodeError("is a folder, not a file") from None
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from None


def read_photo(
    path: str,
    *,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    decode_side: int | None = DEFAULT_DECODE_SIDE,
) -> DecodedPhoto:
    """Read, hash and decode one photo file; raises :class:`DecodeError` with a reason."""
    data, st = _read_file(path)
    image, width, height, metadata = open_image(
        data, max_megapixels=max_megapixels, decode_side=decode_side, mtime_ns=st.st_mtime_ns
    )
    return DecodedPhoto(
        path=path,
        image=image,
        width=width,
        height=height,
        content_hash=hash_bytes(data),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        metadata=metadata,
    )


def read_file_metadata(path: str, mtime_ns: int) -> PhotoMetadata:
    """Metadata of a file whose pixels are already indexed: reads the header, decodes nothing.

    A file that cannot be opened any more still gets its file-time date (no EXIF).
    """
    return _header_metadata(path, mtime_ns)


def _header_metadata(source: str | IO[bytes], mtime_ns: int) -> PhotoMetadata:
    """Metadata from an image's header (a path or bytes); an unreadable one gets its file time."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _pil_open()(source) as image:
                return metadata_of(image, mtime_ns)
    except Exception:  # unreadable now: the next full read will report it
        return metadata_of(None, mtime_ns)


def load_query_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image used as a query (full resolution, oriented, RGB)."""
    return read_given_photo(path, decode_side=None).image


def read_given_photo(path: str | os.PathLike[str], **options: Any) -> DecodedPhoto:
    """:func:`read_photo` for a file a person named: ``~`` expanded, "no such file" if absent.

    During indexing a missing file is one that vanished after the scan; a file named on the
    command line or in an API call that does not exist is simply not there.
    """
    full = expand_path(path)
    if not os.path.lexists(full):
        raise DecodeError("no such file")
    return read_photo(full, **options)
