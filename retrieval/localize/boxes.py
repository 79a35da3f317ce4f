"""Heat map -> boxes: threshold, 8-connected components, sub-cell edges."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .grid import cell_bounds


@dataclass(frozen=True)
class LocalizedBox:
    """One located instance: pixel box ``(x1, y1, x2, y2)`` and a [0, 1] confidence."""

    box: tuple[float, float, float, float]
    confidence: float
    cells: int = 1  # grid cells in the connected component, for filtering and debugging


def connected_components(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected components of a small boolean grid, by breadth-first search."""
    rows, cols = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    comps: list[list[tuple[int, int]]] = []
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        queue: deque[tuple[int, int]] = deque([(int(r0), int(c0))])
        comp: list[tuple[int, int]] = []
        while queue:
            r, c = queue.popleft()
            comp.append((r, c))
            for rr in range(max(r - 1, 0), min(r + 2, rows)):
                for cc in range(max(c - 1, 0), min(c + 2, cols)):
                    if mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        queue.append((rr, cc))
        comps.append(comp)
    return comps


def _subcell_span(
    heat: np.ndarray, comp: np.ndarray, threshold: float, starts: np.ndarray, ends: np.ndarray
) -> tuple[float, float]:
    """Span along axis 1 of the ``threshold`` iso-contour of the heat interpolated linearly
    between cell centres, restricted to the component ``comp`` (boolean grid)."""
    cols = heat.shape[1]
    centres = (starts + ends) / 2.0
    lows: list[float] = []
    highs: list[float] = []
    for r, c in zip(*np.nonzero(comp), strict=True):
        h1 = float(heat[r, c])
        for nb, edge, out in ((c - 1, starts[0], lows), (c + 1, ends[-1], highs)):
            if not 0 <= nb < cols:
                # Image border: no outer neighbour, so extend the slope from the inner one.
                # Border cells are seen by fewer windows, so they stay hot next to an object
                # that does not touch the border; a flat or rising slope means it does.
                inner = c + (c - nb)
                h_in = float(heat[r, inner]) if 0 <= inner < cols else h1
                if h_in > h1:
                    step = (h1 - threshold) / (h_in - h1) * abs(centres[c] - centres[inner])
                    pos = centres[c] + (step if nb > c else -step)
                    out.append(float(min(max(pos, starts[c]), ends[c])))
                else:
                    out.append(float(edge))
            elif not comp[r, nb]:
                h0 = float(heat[r, nb])
                frac = (threshold - h0) / (h1 - h0) if h1 > h0 else 1.0
                frac = min(max(frac, 0.0), 1.0)
                out.append(float(centres[nb] + frac * (centres[c] - centres[nb])))
    cc = np.nonzero(comp.any(axis=0))[0]
    first, last = int(cc[0]), int(cc[-1])
    # A cell barely over the threshold would collapse onto its centre: keep its middle half.
    lo = min(min(lows), centres[first] - (ends[first] - starts[first]) / 4)
    hi = max(max(highs), centres[last] + (ends[last] - starts[last]) / 4)
    return float(lo), float(hi)


def heat_to_boxes(
    heat: np.ndarray,
    patch: int,
    image_size: tuple[int, int],
    *,
    threshold: float = 0.5,
    min_box_patches: int = 1,
    subcell: bool = True,
) -> list[LocalizedBox]:
    """Threshold a normalised cell map into boxes, one per 8-connected component.

    Zero cells (at or below the mean) never count, so ``threshold=0`` means "above average"
    rather than "the whole image". ``subcell`` places each edge where the heat, interpolated
    linearly between cell centres, crosses the threshold; whole-cell boxes (the article's)
    overshoot by up to a cell per side. Boxes come sorted by confidence, then size.
    """
    width, height = image_size
    rows, cols = heat.shape
    mask = (heat >= threshold) & (heat > 0)
    x_starts, x_ends = cell_bounds(cols, patch, width)
    y_starts, y_ends = cell_bounds(rows, patch, height)
    boxes: list[LocalizedBox] = []
    for comp in connected_components(mask):
        if len(comp) < min_box_patches:
            continue
        rs = np.array([r for r, _ in comp])
        cs = np.array([c for _, c in comp])
        if subcell:
            comp_mask = np.zeros_like(mask)
            comp_mask[rs, cs] = True
            x1, x2 = _subcell_span(heat, comp_mask, threshold, x_starts, x_ends)
            y1, y2 = _subcell_span(heat.T, comp_mask.T, threshold, y_starts, y_ends)
        else:
            x1, x2 = cs.min() * patch, min((cs.max() + 1) * patch, width)
            y1, y2 = rs.min() * patch, min((rs.max() + 1) * patch, height)
        conf = float(heat[rs, cs].mean())
        box = (float(x1), float(y1), float(x2), float(y2))
        boxes.append(LocalizedBox(box=box, confidence=conf, cells=len(comp)))
    boxes.sort(key=lambda b: (-b.confidence, -b.cells))
    return boxes
