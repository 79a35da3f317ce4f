"""Serving photos: only the indexed bytes, decoded with the bomb guard, cut and encoded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from indexer.media.decode import DecodeError, hash_bytes
from indexer.store import Photo
from retrieval.serve.photos import (
    NotIndexed,
    crop,
    decode_upload,
    fit,
    jpeg_bytes,
    png_bytes,
    read_indexed,
)


def _photo(path: Path, size: tuple[int, int] = (120, 80)) -> Photo:
    Image.new("RGB", size, (200, 40, 40)).save(path, "JPEG")
    data = path.read_bytes()
    return Photo(
        id=7, path=str(path), size=len(data), mtime_ns=1, width=size[0], height=size[1],
        content_hash=hash_bytes(data), caption="", indexed_at=0.0,
    )  # fmt: skip


def test_an_indexed_photo_is_read_when_its_bytes_are_unchanged(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "a.jpg")
    decoded = read_indexed(photo, decode_side=None)
    assert decoded.image.size == (120, 80) and decoded.content_hash == photo.content_hash


@pytest.mark.parametrize("change", ["edited", "gone", "longer", "garbage"])
def test_a_file_that_no_longer_holds_what_was_indexed_is_not_served(
    tmp_path: Path, change: str
) -> None:
    path = tmp_path / "a.jpg"
    photo = _photo(path)
    if change == "edited":
        Image.new("RGB", (120, 80), (10, 200, 10)).save(path, "JPEG")
    elif change == "gone":
        path.unlink()
    elif change == "longer":
        path.write_bytes(path.read_bytes() + b"more")
    else:
        path.write_bytes(b"x" * photo.size)  # same size, other bytes
    with pytest.raises(NotIndexed):
        read_indexed(photo, decode_side=None)


def test_uploads_decode_or_say_why_not() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, "PNG")
    decoded = decode_upload(buffer.getvalue(), decode_side=32)
    assert decoded.path == "upload" and (decoded.width, decoded.height) == (64, 48)
    assert max(decoded.image.size) <= 64
    with pytest.raises(DecodeError):
        decode_upload(b"not an image at all")


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [((400, 200), 100, (100, 50)), ((40, 20), 100, (40, 20)), ((400, 200), None, (400, 200))],
)
def test_fit_only_shrinks(size: tuple[int, int], max_side: int | None, expected: tuple) -> None:
    image = Image.new("RGB", size)
    assert fit(image, max_side).size == expected
    assert image.size == size  # the original is left as it was


def test_crop_maps_original_pixels_onto_a_reduced_decode(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    photo = _photo(path, (400, 200))
    half = read_indexed(photo, decode_side=100)
    sx, sy = half.scale
    piece = crop(half, (100.0, 50.0, 300.0, 150.0))
    assert piece.size == (round(300 / sx) - int(100 / sx), round(150 / sy) - int(50 / sy))
    assert crop(half, (-10.0, -10.0, 0.0, 0.0)).size == (1, 1)  # never empty, never outside


def test_pictures_encode_as_jpeg_and_png() -> None:
    image = Image.new("RGBA", (20, 10), (1, 2, 3, 128))
    assert Image.open(io.BytesIO(jpeg_bytes(image))).format == "JPEG"
    assert Image.open(io.BytesIO(png_bytes(image))).format == "PNG"
