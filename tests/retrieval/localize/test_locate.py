"""localize(): accuracy, edge cases, budgets and validation, with synthetic scorers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from indexer.media.decode import to_rgb
from retrieval.localize import (
    Localization,
    LocalizedBox,
    localize,
    normalise_heat,
    plan_grid,
)
from tests.fixtures import RED, brightness, iou, make_image, red_fraction, square_box


class Recorder:
    """Wraps a scorer and records every call's batch size."""

    def __init__(self, fn: Callable[[list[Image.Image]], np.ndarray]) -> None:
        self.fn = fn
        self.calls: list[int] = []

    def __call__(self, crops: list[Image.Image]) -> np.ndarray:
        self.calls.append(len(crops))
        return self.fn(crops)

    @property
    def total(self) -> int:
        return sum(self.calls)


def assert_valid(loc: Localization, size: tuple[int, int]) -> None:
    rows, cols = loc.grid
    assert loc.heatmap.shape == (rows, cols)
    assert loc.heatmap.dtype == np.float32
    assert np.all(np.isfinite(loc.heatmap))
    assert loc.heatmap.min() >= 0.0 and loc.heatmap.max() <= 1.0
    assert rows == math.ceil(size[1] / loc.patch) and cols == math.ceil(size[0] / loc.patch)
    confidences = [b.confidence for b in loc.boxes]
    assert confidences == sorted(confidences, reverse=True)
    for b in loc.boxes:
        x1, y1, x2, y2 = b.box
        assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
        assert 0.0 <= b.confidence <= 1.0


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize(
    ("size", "square", "window"),
    [
        ((640, 480), (240, 160, 160), None),  # aligned with the 32 px grid
        ((640, 480), (117, 203, 160), None),  # unaligned
        ((640, 480), (421, 23, 200), None),
        ((640, 480), (100, 100, 120), 2),  # a quarter of the short side: smaller window
        ((640, 480), (333, 217, 120), 2),
        ((2000, 1500), (1210, 430, 500), None),  # large image, auto patch grows
    ],
)
def test_single_square_found(
    size: tuple[int, int], square: tuple[int, int, int], window: int | None
) -> None:
    image = make_image(*size, [square])
    loc = localize(image, red_fraction, window=window)
    assert_valid(loc, size)
    assert loc.windows_scored <= 256
    assert loc.best is not None
    assert iou(loc.best.box, square_box(*square)) >= 0.7


def test_window_sized_object_is_found_but_dilated() -> None:
    """Averaging overlapping windows blurs by about a window: documented, not hidden."""
    loc = localize(make_image(640, 480, [(333, 217, 120)]), red_fraction)
    assert loc.best is not None
    assert iou(loc.best.box, square_box(333, 217, 120)) >= 0.5


def test_object_near_border_is_stretched_towards_it() -> None:
    """Border cells are covered by fewer windows, all touching a nearby object (article too)."""
    loc = localize(make_image(640, 480, [(37, 291, 160)]), red_fraction)
    assert loc.best is not None
    assert iou(loc.best.box, square_box(37, 291, 160)) >= 0.5


def test_two_squares_give_two_boxes() -> None:
    squares = [(60, 50, 150), (420, 290, 150)]
    loc = localize(make_image(640, 480, squares), red_fraction)
    assert_valid(loc, (640, 480))
    assert len(loc.boxes) == 2
    for square in squares:
        assert max(iou(b.box, square_box(*square)) for b in loc.boxes) >= 0.7


def test_min_box_patches_drops_small_components() -> None:
    squares = [(60, 60, 180), (460, 320, 100)]
    image = make_image(640, 480, squares)
    both = localize(image, red_fraction, threshold=0.35)
    assert len(both.boxes) == 2
    for box, square in zip(both.boxes, squares, strict=True):  # the bigger one is hotter
        assert iou(box.box, square_box(*square)) >= 0.6
    small = both.boxes[1].cells
    big_only = localize(image, red_fraction, threshold=0.35, min_box_patches=small + 1)
    assert [b.box for b in big_only.boxes] == [both.boxes[0].box]


def test_occlusion_finds_the_square() -> None:
    square = (150, 60, 100)
    image = make_image(360, 270, [square])
    scorer = Recorder(red_fraction)
    loc = localize(image, scorer, method="occlusion")
    assert_valid(loc, (360, 270))
    assert loc.method == "occlusion" and loc.window == 2
    assert scorer.total == loc.windows_scored <= 256
    assert loc.best is not None
    assert iou(loc.best.box, square_box(*square)) >= 0.7
    assert all(isinstance(b, LocalizedBox) for b in loc.boxes)


def test_occlusion_downscales_big_images() -> None:
    sizes: set[tuple[int, int]] = set()

    def scorer(crops: list[Image.Image]) -> np.ndarray:
        sizes.update(c.size for c in crops)
        return red_fraction(crops)

    square = (900, 300, 500)
    loc = localize(make_image(2048, 1024, [square]), scorer, method="occlusion", max_windows=60)
    assert sizes == {(1024, 512)}
    assert loc.best is not None
    assert iou(loc.best.box, square_box(*square)) >= 0.5


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("size", [(20, 20), (1, 1), (5, 40)])
def test_image_smaller_than_a_window(size: tuple[int, int]) -> None:
    loc = localize(make_image(*size, []), red_fraction)
    assert_valid(loc, size)
    assert loc.windows_scored >= 1
    assert loc.boxes == []


def test_single_window_covers_whole_image() -> None:
    seen: list[tuple[int, int]] = []

    def scorer(crops: list[Image.Image]) -> np.ndarray:
        seen.extend(c.size for c in crops)
        return np.ones(len(crops))

    loc = localize(make_image(20, 20, []), scorer)
    assert seen == [(20, 20)] and loc.windows_scored == 1


@pytest.mark.parametrize(
    ("size", "square"),
    [((2000, 60), (1500, 0, 60)), ((60, 2000), (0, 300, 60)), ((2000, 100), (90, 20, 80))],
)
def test_extreme_aspect_ratios(size: tuple[int, int], square: tuple[int, int, int]) -> None:
    loc = localize(make_image(*size, [square]), red_fraction)
    assert_valid(loc, size)
    assert loc.windows_scored <= 256
    assert loc.best is not None
    assert iou(loc.best.box, square_box(*square)) >= 0.5


@pytest.mark.parametrize("method", ["window", "occlusion"])
def test_constant_scorer_gives_no_box(method: str) -> None:
    loc = localize(
        make_image(320, 240, [(10, 10, 50)]),
        lambda crops: np.full(len(crops), 0.3),
        method=method,
        threshold=0.0,
    )
    assert not np.any(np.isnan(loc.heatmap))
    assert np.all(loc.heatmap == 0)
    assert loc.boxes == []


def test_rounding_noise_is_not_a_signal() -> None:
    raw = np.full((4, 5), 0.1) + np.arange(20).reshape(4, 5) * 1e-17
    assert np.all(normalise_heat(raw) == 0)


def test_grayscale_input() -> None:
    pixels = np.full((240, 320), 30, np.uint8)
    pixels[100:180, 200:280] = 220
    loc = localize(Image.fromarray(pixels), brightness)
    assert loc.best is not None
    assert iou(loc.best.box, square_box(200, 100, 80)) >= 0.7


def test_rgba_input_composited_on_white_as_at_index_time() -> None:
    pixels = np.zeros((240, 320, 4), np.uint8)
    pixels[..., :3] = RED  # red everywhere, but only the square is opaque
    pixels[40:120, 60:140, 3] = 255
    image = Image.fromarray(pixels)
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)
    loc = localize(image, red_fraction)
    assert loc.best is not None
    assert iou(loc.best.box, square_box(60, 40, 80)) >= 0.7


def test_palette_input() -> None:
    square = (150, 60, 100)
    image = make_image(360, 270, [square]).quantize(16)
    assert image.mode == "P"
    loc = localize(image, red_fraction)
    assert loc.best is not None
    assert iou(loc.best.box, square_box(*square)) >= 0.7


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "1", "LA", "PA", "CMYK", "YCbCr", "HSV"])
def test_other_modes_do_not_crash(mode: str) -> None:
    image = make_image(64, 48, [(10, 10, 20)]).convert("L").convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (64, 48)
    assert_valid(localize(image, brightness), (64, 48))


@pytest.mark.parametrize(("mode", "pixel"), [("La", (100, 128)), ("RGBa", (50, 25, 10, 128))])
def test_premultiplied_modes(mode: str, pixel: tuple[int, ...]) -> None:
    rgb = to_rgb(Image.new(mode, (6, 4), pixel))  # PIL itself cannot convert these
    expected = (100, 100, 100) if mode == "La" else (50, 25, 10)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == expected


def test_sixteen_bit_keeps_brightness() -> None:
    image = Image.fromarray(np.full((8, 8), 60000, np.uint16))
    assert to_rgb(image).getpixel((0, 0)) == (233, 233, 233)


def test_empty_image_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        localize(Image.new("RGB", (0, 5)), red_fraction)


# --------------------------------------------------------------------------- budget, batches


@pytest.mark.parametrize(
    ("kwargs", "cap"),
    [
        ({"max_windows": 50}, 50),
        ({"max_windows": 1}, 1),
        ({"max_windows": 30, "patch": 8}, 30),
        ({"max_windows": 40, "method": "occlusion"}, 40),
        ({"max_windows": 100, "window": 5, "stride": 2}, 100),
    ],
)
def test_max_windows_is_honoured(kwargs: dict[str, Any], cap: int) -> None:
    scorer = Recorder(red_fraction)
    loc = localize(make_image(400, 300, [(100, 100, 100)]), scorer, **kwargs)
    assert scorer.total == loc.windows_scored <= cap
    assert_valid(loc, (400, 300))


def test_explicit_patch_kept_when_stride_suffices() -> None:
    loc = localize(make_image(640, 480, []), red_fraction, patch=20, max_windows=256)
    assert loc.patch == 20 and loc.stride == 2 and loc.windows_scored <= 256


def test_plan_covers_every_cell() -> None:
    plan = plan_grid(650, 490, patch=None, window=3, stride=2, budget=256)
    covered = np.zeros((plan.rows, plan.cols), bool)
    for r in plan.row_starts:
        for c in plan.col_starts:
            covered[r : r + plan.win_r, c : c + plan.win_c] = True
    assert covered.all()


def coordinate_image(width: int, height: int) -> Image.Image:
    """Every pixel encodes its own (x, y), so a crop tells where it was cut from."""
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs % 256, ys % 256, (xs // 256) * 16 + ys // 256], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.mark.parametrize(("size", "stride"), [((650, 490), 1), ((650, 490), 3), ((1111, 77), 2)])
def test_crops_are_grid_aligned_and_cover_the_image(size: tuple[int, int], stride: int) -> None:
    width, height = size
    covered = np.zeros((height, width), bool)
    crops: list[tuple[int, int, int, int]] = []

    def scorer(batch: list[Image.Image]) -> np.ndarray:
        for crop in batch:
            a = np.asarray(crop).astype(int)
            x0 = a[0, 0, 0] + 256 * (a[0, 0, 2] // 16)
            y0 = a[0, 0, 1] + 256 * (a[0, 0, 2] % 16)
            w, h = crop.size
            # A true sub-rectangle: the crop equals the image there, pixel for pixel.
            assert np.array_equal(np.asarray(crop), np.asarray(image)[y0 : y0 + h, x0 : x0 + w])
            crops.append((x0, y0, w, h))
            covered[y0 : y0 + h, x0 : x0 + w] = True
        return np.zeros(len(batch))

    image = coordinate_image(width, height)
    loc = localize(image, scorer, stride=stride)
    p = loc.patch
    assert covered.all()  # no pixel dropped, partial last cells included
    assert all(x % p == 0 and y % p == 0 for x, y, _, _ in crops)
    assert max(w for _, _, w, _ in crops) <= 3 * p and max(h for _, _, _, h in crops) <= 3 * p


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batches_respect_batch_size(batch_size: int) -> None:
    scorer = Recorder(red_fraction)
    loc = localize(make_image(320, 240, [(50, 50, 80)]), scorer, batch_size=batch_size)
    assert max(scorer.calls) <= batch_size
    assert scorer.total == loc.windows_scored
    assert len(scorer.calls) == math.ceil(loc.windows_scored / batch_size)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"window": 2.5},
        {"stride": 0},
        {"stride": 4, "window": 3},
        {"threshold": -0.1},
        {"threshold": 1.5},
        {"threshold": float("nan")},
        {"method": "gradcam"},
        {"max_windows": 0},
        {"max_windows": 1, "method": "occlusion"},
        {"batch_size": 0},
        {"patch": 0},
        {"patch": True},
        {"min_box_patches": 0},
    ],
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        localize(make_image(64, 64, []), red_fraction, **kwargs)


@pytest.mark.parametrize(
    "bad",
    [
        lambda crops: np.zeros(len(crops) + 1),
        lambda crops: np.zeros((len(crops), 2)),
        lambda crops: np.full(len(crops), np.nan),
        lambda crops: np.full(len(crops), np.inf),
        lambda crops: ["a"] * len(crops),
    ],
)
def test_bad_score_fn_output(bad: Callable[[list[Image.Image]], np.ndarray]) -> None:
    with pytest.raises(ValueError, match="score"):
        localize(make_image(64, 64, []), bad)


def test_column_vector_scores_accepted() -> None:
    loc = localize(make_image(320, 240, [(50, 50, 80)]), lambda c: red_fraction(c)[:, None])
    assert loc.best is not None
