"""Grid plans: cells, windows and a budget that holds for any photo size."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.localize.grid import auto_patch, cell_bounds, plan_grid


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(256, 256, 16), (1024, 768, 48), (4000, 3000, 188), (100, 40, 16)],
)
def test_auto_patch_gives_about_sixteen_cells_on_the_short_side(
    width: int, height: int, expected: int
) -> None:
    assert auto_patch(width, height) == expected


@pytest.mark.parametrize(
    ("width", "height", "patch", "window", "stride", "budget"),
    [
        (640, 480, None, 3, 1, 128),
        (4000, 3000, None, 3, 1, 64),
        (640, 480, 16, 3, 1, 32),  # an explicit patch: the stride rises first
        (300, 40, None, 3, 1, 128),  # a strip: the window shrinks to the grid
        (50, 50, 64, 3, 1, 128),  # one cell
    ],
)
def test_plans_cover_the_photo_within_the_budget(
    width: int, height: int, patch: int | None, window: int, stride: int, budget: int
) -> None:
    plan = plan_grid(width, height, patch=patch, window=window, stride=stride, budget=budget)
    assert plan.count <= budget and plan.count == len(plan.row_starts) * len(plan.col_starts)
    assert plan.rows * plan.patch >= height and plan.cols * plan.patch >= width
    # windows start at 0 and the last one ends at the grid's edge, so every cell is covered
    assert plan.row_starts[0] == 0 and plan.row_starts[-1] + plan.win_r == plan.rows
    assert plan.col_starts[0] == 0 and plan.col_starts[-1] + plan.win_c == plan.cols
    assert plan.win_r <= min(window, plan.rows) and plan.win_c <= min(window, plan.cols)


def test_an_explicit_patch_is_kept_when_a_larger_stride_is_enough() -> None:
    plan = plan_grid(640, 480, patch=32, window=3, stride=1, budget=100)
    assert plan.patch == 32 and plan.stride > 1


def test_the_smallest_patch_meeting_the_budget_is_chosen() -> None:
    plan = plan_grid(2000, 1500, patch=None, window=3, stride=1, budget=50)
    smaller = plan_grid(
        2000, 1500, patch=plan.patch - 1, window=3, stride=plan.stride, budget=10**9
    )
    assert plan.count <= 50 < smaller.count


def test_cell_bounds_clip_the_last_cell_to_the_photo() -> None:
    starts, ends = cell_bounds(4, 30, 100)
    np.testing.assert_array_equal(starts, [0, 30, 60, 90])
    np.testing.assert_array_equal(ends, [30, 60, 90, 100])
