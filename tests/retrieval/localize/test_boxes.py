"""Heat map -> boxes: components and whole-cell boxes."""

from __future__ import annotations

import numpy as np

from retrieval.localize import connected_components, heat_to_boxes


def test_connected_components_are_8_connected() -> None:
    mask = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]], bool)
    comps = sorted(sorted(c) for c in connected_components(mask))
    assert comps == [[(0, 0), (1, 1)], [(0, 3)], [(2, 3)]]


def test_cell_boxes_match_the_article_when_subcell_off() -> None:
    heat = np.zeros((4, 5), np.float32)
    heat[1:3, 1:4] = 1.0
    boxes = heat_to_boxes(heat, 10, (45, 40), subcell=False)
    assert [b.box for b in boxes] == [(10.0, 10.0, 40.0, 30.0)]
    assert boxes[0].confidence == 1.0 and boxes[0].cells == 6
