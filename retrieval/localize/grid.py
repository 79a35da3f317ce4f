"""The cell grid and window positions of a localisation, sized to a window budget.

The image is split into square ``patch`` px cells (the last row/column may be partial, so
no pixel is dropped); windows of ``window x window`` cells slide with ``stride`` and the
last one of a row/column is aligned to the grid edge, so every cell is covered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TARGET_CELLS_SHORT_SIDE = 16  # before the max_windows cap
MIN_AUTO_PATCH = 16


def _starts(n: int, win: int, stride: int) -> list[int]:
    """Window start cells along one axis; the last window is aligned to the grid edge."""
    out = list(range(0, n - win + 1, stride))
    if out[-1] != n - win:
        out.append(n - win)
    return out


@dataclass(frozen=True)
class GridPlan:
    """Cell grid and window positions chosen for one image."""

    patch: int
    rows: int
    cols: int
    win_r: int
    win_c: int
    stride: int
    row_starts: list[int]
    col_starts: list[int]

    @property
    def count(self) -> int:
        return len(self.row_starts) * len(self.col_starts)


def _make_plan(width: int, height: int, patch: int, window: int, stride: int) -> GridPlan:
    rows, cols = math.ceil(height / patch), math.ceil(width / patch)
    win_r, win_c = min(window, rows), min(window, cols)  # shrink the window to a small grid
    return GridPlan(
        patch=patch,
        rows=rows,
        cols=cols,
        win_r=win_r,
        win_c=win_c,
        stride=stride,
        row_starts=_starts(rows, win_r, stride),
        col_starts=_starts(cols, win_c, stride),
    )


def auto_patch(width: int, height: int) -> int:
    """Patch side giving ~16 cells along the short side, never under 16 px."""
    return max(MIN_AUTO_PATCH, math.ceil(min(width, height) / TARGET_CELLS_SHORT_SIDE))


def plan_grid(
    width: int,
    height: int,
    *,
    patch: int | None,
    window: int,
    stride: int,
    budget: int,
) -> GridPlan:
    """Pick patch/stride so that at most ``budget`` windows are scored.

    An automatic patch grows (smallest size that fits); an explicit one is kept while
    raising the stride up to the window can meet the budget, and only then grows too.
    Window counts fall monotonically with the patch size, so a bisection finds the minimum.
    """
    explicit = patch is not None
    p = patch if patch is not None else auto_patch(width, height)
    plan = _make_plan(width, height, p, window, stride)
    if plan.count <= budget:
        return plan
    if explicit:
        for s in range(stride + 1, window + 1):
            plan = _make_plan(width, height, p, window, s)
            if plan.count <= budget:
                return plan
        stride = max(stride, window)
    lo, hi = p, max(width, height, p)  # at hi the grid is 1x1: one window
    while lo < hi:
        mid = (lo + hi) // 2
        if _make_plan(width, height, mid, window, stride).count <= budget:
            hi = mid
        else:
            lo = mid + 1
    return _make_plan(width, height, lo, window, stride)


def cell_bounds(n: int, patch: int, extent: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end pixel of each cell along one axis (the last one may be partial)."""
    starts = np.arange(n, dtype=np.float64) * patch
    return starts, np.minimum(starts + patch, extent)
