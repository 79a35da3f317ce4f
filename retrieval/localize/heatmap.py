"""Window scores -> a normalised heat map over the cell grid, and the result record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boxes import LocalizedBox
from .grid import GridPlan, cell_bounds


def cell_average(plan: GridPlan, scores: np.ndarray) -> np.ndarray:
    """Each cell's mean score over the windows that covered it (window order of the plan)."""
    sums = np.zeros((plan.rows, plan.cols), dtype=np.float64)
    runs = np.zeros((plan.rows, plan.cols), dtype=np.float64)
    k = 0
    for r in plan.row_starts:
        for c in plan.col_starts:
            sums[r : r + plan.win_r, c : c + plan.win_c] += scores[k]
            runs[r : r + plan.win_r, c : c + plan.win_c] += 1.0
            k += 1
    return sums / np.maximum(runs, 1.0)  # every cell is covered; max() only guards


def normalise_heat(raw: np.ndarray) -> np.ndarray:
    """``max(x - mean, 0) / max``: float32 in [0, 1]; a (numerically) flat map -> zeros."""
    raw = np.asarray(raw, dtype=np.float64)
    spread = float(raw.max() - raw.min()) if raw.size else 0.0
    if not spread > 1e-9 * float(np.abs(raw).max(initial=0.0)):
        return np.zeros(raw.shape, dtype=np.float32)
    heat = np.clip(raw - raw.mean(), 0.0, None)
    return (heat / heat.max()).astype(np.float32)


@dataclass
class Localization:
    """Result of ``localize``: the normalised heat map, its boxes and the grid that made it."""

    heatmap: np.ndarray  # (rows, cols) float32 in [0, 1]
    boxes: list[LocalizedBox]
    patch: int
    grid: tuple[int, int]  # (rows, cols)
    windows_scored: int  # images passed to score_fn (occlusion: includes the unmasked one)
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the input image
    window: int = 0  # effective window (cells) after defaults and shrinking
    stride: int = 0  # effective stride after the max_windows cap
    method: str = "window"
    raw: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """Coverage-averaged scores (window) or score drops (occlusion) before normalisation:
    the only place absolute similarity survives, e.g. to decide the query is absent."""

    @property
    def best(self) -> LocalizedBox | None:
        """Highest-confidence box, or None; the article's single-box answer."""
        return self.boxes[0] if self.boxes else None

    def heatmap_image(
        self, size: tuple[int, int] | None = None, *, smooth: bool = False
    ) -> np.ndarray:
        """Heat map resampled to ``size`` = (width, height), default the input image size.

        Cells map onto the same pixels they were cut from (partial last cells included), so
        the result aligns with the image exactly; ``smooth`` interpolates bilinearly between
        cell centres for nicer overlays.
        """
        img_w, img_h = self.image_size
        out_w, out_h = size if size is not None else (img_w, img_h)
        if out_w < 1 or out_h < 1:
            raise ValueError(f"size must be positive, got {(out_w, out_h)}")
        rows, cols = self.grid
        ys = (np.arange(out_h) + 0.5) * (img_h / out_h)  # source pixel centres
        xs = (np.arange(out_w) + 0.5) * (img_w / out_w)
        heat = self.heatmap.astype(np.float32)
        if not smooth:
            ri = np.minimum((ys // self.patch).astype(np.intp), rows - 1)
            ci = np.minimum((xs // self.patch).astype(np.intp), cols - 1)
            return heat[ri[:, None], ci[None, :]]
        r0, r1, wy = _interp_axis(ys, rows, self.patch, img_h)
        c0, c1, wx = _interp_axis(xs, cols, self.patch, img_w)
        top = heat[r0[:, None], c0] * (1 - wx) + heat[r0[:, None], c1] * wx
        bottom = heat[r1[:, None], c0] * (1 - wx) + heat[r1[:, None], c1] * wx
        return (top * (1 - wy[:, None]) + bottom * wy[:, None]).astype(np.float32)


def _interp_axis(
    coords: np.ndarray, n: int, patch: int, extent: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbouring cell indices and weight for linear interpolation between cell centres."""
    starts, ends = cell_bounds(n, patch, extent)
    pos = np.interp(coords, (starts + ends) / 2.0, np.arange(n, dtype=np.float64))
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, (pos - lo).astype(np.float32)
