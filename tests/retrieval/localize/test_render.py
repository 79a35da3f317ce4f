"""Drawing boxes and heat-map overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from retrieval.cli import app
from retrieval.localize import LocalizedBox, localize
from retrieval.localize.render import draw_boxes, heatmap_overlay, prompt_colour
from tests.fixtures import Models, make_image, red_fraction


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_draw_boxes_returns_rgb_of_input_size(mode: str) -> None:
    image = make_image(320, 240, []).convert(mode)
    boxes = [LocalizedBox((10.0, 20.0, 110.0, 120.0), 0.87), LocalizedBox((0, 0, 320, 240), 0.5)]
    out = draw_boxes(
        image, [("a cat", boxes), ("a butterfly", [LocalizedBox((200, 150, 300, 230), 0.4)])]
    )
    assert out.mode == "RGB" and out.size == image.size
    assert out.getpixel((10, 70)) == prompt_colour(0)  # left edge of the first box
    assert out.getpixel((250, 229)) == prompt_colour(1)  # bottom edge of the second prompt's box
    assert image.mode == mode  # input untouched


def test_draw_boxes_without_detections() -> None:
    out = draw_boxes(make_image(50, 40, []), [])
    assert out.mode == "RGB" and out.size == (50, 40)


def test_heatmap_overlay_returns_rgb_of_input_size() -> None:
    image = make_image(320, 240, [(50, 50, 80), (200, 120, 80)])
    heat = np.zeros((240, 320), np.float32)
    heat[50:130, 50:130] = 1.0
    single = heatmap_overlay(image.convert("RGBA"), [heat])
    assert single.mode == "RGB" and single.size == (320, 240)
    # Untouched where the map is 1, darkened to the floor (0.25) where it is 0.
    assert single.getpixel((90, 90)) == image.getpixel((90, 90))
    dark = np.asarray(single, np.float32)[5, 5]
    assert np.allclose(dark, np.round(np.asarray(image, np.float32)[5, 5] * 0.25), atol=1)

    loc = localize(image, red_fraction)
    several = heatmap_overlay(image.convert("L"), [loc, loc.heatmap, np.eye(3)])
    assert several.mode == "RGB" and several.size == (320, 240)
    tinted = heatmap_overlay(image, [heat], colours=[(0, 0, 255)])
    assert tinted.getpixel((90, 90))[2] > image.getpixel((90, 90))[2]
    assert heatmap_overlay(image, []).size == (320, 240)
    with pytest.raises(ValueError):
        heatmap_overlay(image, [heat, heat], colours=[(255, 0, 0)])
    with pytest.raises(ValueError):
        heatmap_overlay(image, [np.zeros(5)])


# -- the heat map's legend (prompt -> colour) ------------------------------------------------
LEGEND_PROMPTS = ("a butterfly", "a cat")


def test_heatmap_has_a_legend_with_one_swatch_per_prompt(models: Models, tmp_path: Path) -> None:
    photo = tmp_path / "grey.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(photo)  # no prompt colour in it
    heat = tmp_path / "heat.png"
    result = CliRunner().invoke(
        app,
        [
            "localize", str(photo), *LEGEND_PROMPTS, "--heatmap", str(heat),
            "--clip-model", str(models.clip_dir), "--device", "cpu", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["prompts"]
    assert [p["prompt"] for p in found] == list(LEGEND_PROMPTS)
    colours = [tuple(int(p["colour"][i : i + 2], 16) for i in (1, 3, 5)) for p in found]
    assert len(set(colours)) == len(LEGEND_PROMPTS)

    pixels = np.asarray(Image.open(heat).convert("RGB"))
    assert pixels.shape[:2] == (240, 320)
    for colour in colours:
        # The overlay only ever blends a colour into the photo; pure swatches are the legend.
        exact = np.all(pixels == np.array(colour, np.uint8), axis=-1)
        ys, xs = np.nonzero(exact)
        assert exact.sum() >= 36, f"no legend swatch of {colour}"
        assert xs.max() - xs.min() < 80 and ys.max() - ys.min() < 40  # one compact swatch
