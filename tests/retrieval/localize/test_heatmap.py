"""The heat map record: resampling to image size."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.localize import localize
from tests.fixtures import make_image, red_fraction


def test_heatmap_image_upsamples() -> None:
    loc = localize(make_image(330, 250, [(100, 100, 90)]), red_fraction)
    full = loc.heatmap_image()
    assert full.shape == (250, 330) and full.dtype == np.float32
    assert full.max() == pytest.approx(loc.heatmap.max())
    r, c = np.unravel_index(np.argmax(loc.heatmap), loc.grid)
    assert full[int(r) * loc.patch, int(c) * loc.patch] == loc.heatmap[r, c]
    smooth = loc.heatmap_image((100, 80), smooth=True)
    assert smooth.shape == (80, 100)
    assert smooth.min() >= 0.0 and smooth.max() <= 1.0
