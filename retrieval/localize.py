"""Zero-shot localisation of a query inside one image by scoring crops (window or occlusion).

The algorithm only needs a ``score_fn`` that maps crops to one similarity each, so it knows
nothing about CLIP: ``clip_score_fn`` adapts an embedder, tests use synthetic scorers.

Pipeline (``method="window"``):

1. split the image into a grid of square ``patch`` px cells; the last row/column may be
   partial so no pixel is dropped;
2. slide a ``window x window`` cell window with ``stride`` over the grid and score each crop
   (the last window of a row/column is aligned to the grid edge, so every cell is covered);
3. give each cell the mean score of the windows that covered it;
4. ``max(score - mean, 0)`` then divide by the max, so the map lies in ``[0, 1]`` (a flat map
   carries no location and becomes all zeros);
5. cells with ``heat >= threshold`` (and ``heat > 0``) form 8-connected components, one box
   each in original pixel coordinates, its edges placed where the heat (linear between cell
   centres) crosses the threshold, so boxes are not stuck to the cell grid.

``method="occlusion"`` instead scores the full image with a ``window x window`` block filled
with the image's mean colour (a neutral grey adds no new object, unlike black); the drop from
the unmasked score is what gets averaged per cell, then steps 4-5 are the same.

Default choices and why (measured with a red-square scorer, see the tests):

* ``patch=None`` -> ``ceil(short_side / 16)`` px, at least 16 px, grown until the windows fit
  ``max_windows``: in practice the finest grid the budget affords, whatever the resolution
  (15x20 cells of 32 px for 640x480, 14x21 of 247 px for 5184x3456). Under 16 px a crop
  holds too little for CLIP to recognise anything.
* ``window=3`` (window method): a crop is ~20% of the short side, enough context for CLIP to
  name an object while keeping the map peaked. Averaging overlapping windows blurs the map by
  about a window, so objects smaller than a window come out too large: IoU >= 0.7 is reliable
  from ~1/3 of the short side (>= 5 cells); a 1/4 object scores ~0.77 on average.
* ``window=2`` (occlusion): one masked cell barely moves a CLIP score, a big mask hides
  context everywhere and smears the drop; 2 cells gave IoU ~0.9 on squares from 1/4 up.
* ``stride=1``: the smoothest map; the cost is bounded by ``max_windows`` instead.
* ``max_windows=256``: ~5-10 s of CLIP ViT-B/32 per query on CPU, well under a second on GPU.
  An automatic patch grows until the windows fit; an explicit patch is kept and the stride
  grows (up to the window) first, then the patch.
* ``threshold=0.5``: the article's value; with a mean-clipped map it sits near half-height.
* Box confidence = mean normalised heat of its cells: 1.0 only for a uniformly hot region,
  lower for weak or sprawling ones, so it ranks boxes without rewarding mere size.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from PIL import Image

ScoreFn = Callable[[list[Image.Image]], np.ndarray]
Method = Literal["window", "occlusion"]

METHODS: tuple[str, ...] = ("window", "occlusion")
DEFAULT_WINDOW: dict[str, int] = {"window": 3, "occlusion": 2}
TARGET_CELLS_SHORT_SIDE = 16  # before the max_windows cap
MIN_AUTO_PATCH = 16
# Occlusion feeds whole images to score_fn; CLIP resizes to 224 px anyway, so masked copies
# are built from a downscaled image to keep a batch of them small in memory.
OCCLUSION_MAX_SIDE = 1024
_ALPHA_MODES = {"RGBA", "LA", "PA"}
_PREMULTIPLIED_MODES = {"RGBa", "La"}  # colour already multiplied by alpha: on black
_HIGH_DEPTH_PREFIXES = ("I", "F")


@dataclass(frozen=True)
class LocalizedBox:
    """One located instance: pixel box ``(x1, y1, x2, y2)`` and a [0, 1] confidence."""

    box: tuple[float, float, float, float]
    confidence: float
    cells: int = 1  # grid cells in the connected component, for filtering and debugging


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
    starts, ends = _cell_bounds(n, patch, extent)
    pos = np.interp(coords, (starts + ends) / 2.0, np.arange(n, dtype=np.float64))
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, (pos - lo).astype(np.float32)


# --------------------------------------------------------------------------- input handling


def ensure_rgb(image: Image.Image) -> Image.Image:
    """Return an RGB version of any PIL mode: alpha composited on black, deep modes rescaled.

    ``convert("RGB")`` clips 16/32-bit and float pixels at 255 (a white image), so those are
    rescaled to 8 bits first; dropping alpha instead would expose whatever colour hides
    under fully transparent pixels.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith(_HIGH_DEPTH_PREFIXES):
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):  # native 16-bit range: keep absolute brightness
            scaled = arr / 257.0
        else:  # "I" / "F" have no native range: stretch what is there
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        gray = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode in _PREMULTIPLIED_MODES:  # PIL cannot convert these; the colour is all we need
        arr = np.asarray(image)
        colour = arr[..., :3] if mode == "RGBa" else np.repeat(arr[..., :1], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(colour))
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        rgb = rgba[..., :3] * rgba[..., 3:4] // 255  # composite on black
        return Image.fromarray(rgb.astype(np.uint8))
    return image.convert("RGB")


def _as_int(name: str, value: object, minimum: int) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


# --------------------------------------------------------------------------- grid planning


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


# --------------------------------------------------------------------------- scoring


def _score_batches(
    images: Iterator[Image.Image], total: int, score_fn: ScoreFn, batch_size: int
) -> np.ndarray:
    """Run score_fn over lazily built images in batches; validate every answer."""
    out = np.empty(total, dtype=np.float64)
    done = 0
    batch: list[Image.Image] = []
    for img in images:
        batch.append(img)
        if len(batch) == batch_size or done + len(batch) == total:
            out[done : done + len(batch)] = _check_scores(score_fn(batch), len(batch))
            done += len(batch)
            batch = []  # a fresh list: score_fn may keep the one it was given
    if done != total or batch:
        raise RuntimeError(f"internal error: built {done + len(batch)} crops, planned {total}")
    return out


def _check_scores(scores: object, n: int) -> np.ndarray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"score_fn must return numeric scores: {exc}") from None
    if arr.ndim == 2 and arr.shape == (n, 1):  # e.g. CLIP logits_per_image
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise ValueError(
            f"score_fn must return a 1-D array with one score per crop: "
            f"got shape {arr.shape} for {n} crops"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("score_fn returned non-finite scores (NaN or inf)")
    return arr


def _window_crops(arr: np.ndarray, plan: GridPlan) -> Iterator[Image.Image]:
    h, w = arr.shape[:2]
    p = plan.patch
    for r in plan.row_starts:
        y0, y1 = r * p, min((r + plan.win_r) * p, h)
        for c in plan.col_starts:
            x0, x1 = c * p, min((c + plan.win_c) * p, w)
            yield Image.fromarray(arr[y0:y1, x0:x1])


def _occluded_images(rgb: Image.Image, plan: GridPlan) -> tuple[Image.Image, Iterator[Image.Image]]:
    """The (downscaled) reference image and a generator of masked copies of it."""
    w, h = rgb.size
    scale = min(1.0, OCCLUSION_MAX_SIDE / max(w, h))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    arr = np.asarray(rgb)
    sh, sw = arr.shape[:2]
    fill = arr.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    p = plan.patch

    def edge(cell: int, extent: int, size: int) -> int:
        return min(size, round(min(cell * p, extent) * size / extent))

    def gen() -> Iterator[Image.Image]:
        for r in plan.row_starts:
            y0, y1 = edge(r, h, sh), edge(r + plan.win_r, h, sh)
            for c in plan.col_starts:
                x0, x1 = edge(c, w, sw), edge(c + plan.win_c, w, sw)
                masked = arr.copy()
                masked[y0:y1, x0:x1] = fill
                yield Image.fromarray(masked)

    return rgb, gen()


# --------------------------------------------------------------------------- post-processing


def normalise_heat(raw: np.ndarray) -> np.ndarray:
    """``max(x - mean, 0) / max``: float32 in [0, 1]; a (numerically) flat map -> zeros."""
    raw = np.asarray(raw, dtype=np.float64)
    spread = float(raw.max() - raw.min()) if raw.size else 0.0
    if not spread > 1e-9 * float(np.abs(raw).max(initial=0.0)):
        return np.zeros(raw.shape, dtype=np.float32)
    heat = np.clip(raw - raw.mean(), 0.0, None)
    return (heat / heat.max()).astype(np.float32)


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


def _cell_bounds(n: int, patch: int, extent: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end pixel of each cell along one axis (the last one may be partial)."""
    starts = np.arange(n, dtype=np.float64) * patch
    return starts, np.minimum(starts + patch, extent)


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
    x_starts, x_ends = _cell_bounds(cols, patch, width)
    y_starts, y_ends = _cell_bounds(rows, patch, height)
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


# --------------------------------------------------------------------------- entry point


def localize(
    image: Image.Image,
    score_fn: ScoreFn,
    *,
    patch: int | None = None,
    window: int | None = None,
    stride: int = 1,
    threshold: float = 0.5,
    method: Method = "window",
    max_windows: int = 256,
    batch_size: int = 64,
    min_box_patches: int = 1,
    subcell: bool = True,
) -> Localization:
    """Locate whatever ``score_fn`` scores highly inside ``image``.

    ``score_fn`` gets a list of RGB crops (window) or masked full images (occlusion) and
    returns one similarity per image. ``window=None`` means 3 cells for the window method and
    2 for occlusion. ``max_windows`` caps the images scored per call (occlusion counts the
    unmasked reference too). See the module docstring for the pipeline and defaults.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if patch is not None:
        patch = _as_int("patch", patch, 1)
    window = DEFAULT_WINDOW[method] if window is None else _as_int("window", window, 1)
    stride = _as_int("stride", stride, 1)
    if stride > window:
        raise ValueError(f"stride ({stride}) must be <= window ({window}) to cover every patch")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    max_windows = _as_int("max_windows", max_windows, 2 if method == "occlusion" else 1)
    batch_size = _as_int("batch_size", batch_size, 1)
    min_box_patches = _as_int("min_box_patches", min_box_patches, 1)
    if not callable(score_fn):
        raise ValueError("score_fn must be callable")

    rgb = ensure_rgb(image)
    width, height = rgb.size
    if width < 1 or height < 1:
        raise ValueError(f"image is empty: {width}x{height}")

    budget = max_windows - 1 if method == "occlusion" else max_windows
    plan = plan_grid(width, height, patch=patch, window=window, stride=stride, budget=budget)

    if method == "window":
        arr = np.asarray(rgb)
        scores = _score_batches(_window_crops(arr, plan), plan.count, score_fn, batch_size)
        scored = plan.count
    else:
        reference, masked = _occluded_images(rgb, plan)
        base = float(_check_scores(score_fn([reference]), 1)[0])
        scores = base - _score_batches(masked, plan.count, score_fn, batch_size)
        scored = plan.count + 1

    sums = np.zeros((plan.rows, plan.cols), dtype=np.float64)
    runs = np.zeros((plan.rows, plan.cols), dtype=np.float64)
    k = 0
    for r in plan.row_starts:
        for c in plan.col_starts:
            sums[r : r + plan.win_r, c : c + plan.win_c] += scores[k]
            runs[r : r + plan.win_r, c : c + plan.win_c] += 1.0
            k += 1
    raw = sums / np.maximum(runs, 1.0)  # every cell is covered; max() only guards
    heat = normalise_heat(raw)
    boxes = heat_to_boxes(
        heat,
        plan.patch,
        (width, height),
        threshold=threshold,
        min_box_patches=min_box_patches,
        subcell=subcell,
    )
    return Localization(
        heatmap=heat,
        boxes=boxes,
        patch=plan.patch,
        grid=(plan.rows, plan.cols),
        windows_scored=scored,
        image_size=(width, height),
        window=max(plan.win_r, plan.win_c),
        stride=plan.stride,
        method=method,
        raw=raw.astype(np.float32),
    )


# --------------------------------------------------------------------------- CLIP adapter


class Embedder(Protocol):
    """What ``clip_score_fn`` needs from ``indexer.embed``: L2-normalised float32 vectors."""

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...  # (N, D)

    def embed_text(self, query: str) -> np.ndarray: ...  # (D,), prompt-ensembled

    def embed_image(self, image: Image.Image) -> np.ndarray: ...  # (D,)


def _unit(v: np.ndarray, axis: int = -1) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=axis, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def clip_score_fn(
    embedder: Embedder,
    *,
    text: str | None = None,
    image: Image.Image | None = None,
) -> ScoreFn:
    """Score crops by cosine similarity to a text or example-image query.

    The query is embedded once here, not per batch: prompt ensembling makes it the costly
    part. Vectors are re-normalised defensively so the scores are true cosines.
    """
    if (text is None) == (image is None):
        raise ValueError("pass exactly one of text= or image= as the query")
    if text is not None:
        if not text.strip():
            raise ValueError("text query is empty")
        query = _unit(embedder.embed_text(text))
    else:
        assert image is not None
        query = _unit(embedder.embed_image(ensure_rgb(image)))
    if query.ndim != 1:
        raise ValueError(f"query embedding must be 1-D, got shape {query.shape}")

    def score(crops: list[Image.Image]) -> np.ndarray:
        if not crops:
            return np.zeros(0, dtype=np.float32)
        embs = _unit(embedder.embed_images(crops))
        if embs.shape != (len(crops), query.shape[0]):
            raise ValueError(
                f"embed_images returned shape {embs.shape}, "
                f"expected ({len(crops)}, {query.shape[0]})"
            )
        return (embs @ query).astype(np.float32)

    return score
