"""The heat map carries a legend: each prompt's name beside a swatch of its colour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from retrieval.cli import app
from tests.conftest import Models

PROMPTS = ("a butterfly", "a cat")


def test_heatmap_has_a_legend_with_one_swatch_per_prompt(models: Models, tmp_path: Path) -> None:
    photo = tmp_path / "grey.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(photo)  # no prompt colour in it
    heat = tmp_path / "heat.png"
    result = CliRunner().invoke(
        app,
        [
            "localize", str(photo), *PROMPTS, "--heatmap", str(heat),
            "--clip-model", str(models.clip_dir), "--device", "cpu", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["prompts"]
    assert [p["prompt"] for p in found] == list(PROMPTS)
    colours = [tuple(int(p["colour"][i : i + 2], 16) for i in (1, 3, 5)) for p in found]
    assert len(set(colours)) == len(PROMPTS)

    pixels = np.asarray(Image.open(heat).convert("RGB"))
    assert pixels.shape[:2] == (240, 320)
    for colour in colours:
        # The overlay only ever blends a colour into the photo; pure swatches are the legend.
        exact = np.all(pixels == np.array(colour, np.uint8), axis=-1)
        ys, xs = np.nonzero(exact)
        assert exact.sum() >= 36, f"no legend swatch of {colour}"
        assert xs.max() - xs.min() < 80 and ys.max() - ys.min() < 40  # one compact swatch
