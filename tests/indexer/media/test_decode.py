"""to_rgb: the one colour policy shared by indexing and localisation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexer.media.decode import to_rgb


def test_transparency_goes_on_white() -> None:
    pixels = np.zeros((4, 6, 4), np.uint8)
    pixels[..., 0] = 255  # red, fully transparent except one column
    pixels[:, 0, 3] = 255
    rgb = to_rgb(Image.fromarray(pixels))
    assert rgb.getpixel((0, 0)) == (255, 0, 0) and rgb.getpixel((5, 0)) == (255, 255, 255)


def test_sixteen_bit_is_stretched_and_a_flat_one_keeps_its_brightness() -> None:
    ramp = Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16))
    gray = np.asarray(to_rgb(ramp))[..., 0]
    assert gray.min() == 0 and gray.max() == 255
    flat = Image.fromarray(np.full((8, 8), 60000, np.uint16))
    assert to_rgb(flat).getpixel((0, 0)) == (233, 233, 233)


def test_not_an_image_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="PIL"):
        to_rgb(np.zeros((2, 2, 3)))  # type: ignore[arg-type]
