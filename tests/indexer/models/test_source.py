"""Model sources: preprocessing settings read from the processor JSON match transformers'."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from indexer.models.families import family_of
from indexer.models.source import find_source

FAMILY_DIRS = ["tiny_clip_dir", "tiny_siglip_dir", "tiny_siglip2_dir", "tiny_altclip_dir"]


def _photos() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    return [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for h, w in ((120, 160), (300, 40), (64, 64))
    ]


@pytest.mark.parametrize("fixture", FAMILY_DIRS)
def test_json_settings_give_the_processors_pixels(request, fixture: str) -> None:
    from transformers import AutoImageProcessor

    folder = str(request.getfixturevalue(fixture))
    source = find_source(folder)
    settings = source.image_processor()
    assert isinstance(settings, SimpleNamespace)  # read from JSON, not through transformers
    family = family_of(source.config(), folder)
    ours = family.image_inputs(settings)(_photos())
    reference = family.image_inputs(AutoImageProcessor.from_pretrained(folder))(_photos())
    assert ours.keys() == reference.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], reference[name])


def test_legacy_number_sizes_give_the_processors_pixels(
    tiny_clip_dir: Path, tmp_path: Path
) -> None:
    """Older processor files (the default CLIP's) write sizes as bare numbers."""
    from transformers import AutoImageProcessor

    folder = tmp_path / "legacy"
    shutil.copytree(tiny_clip_dir, folder)
    modern = folder / "processor_config.json"
    data = json.loads(modern.read_text())["image_processor"]
    modern.unlink()
    data.update(size=200, crop_size=180)
    (folder / "preprocessor_config.json").write_text(json.dumps(data))
    source = find_source(str(folder))
    settings = source.image_processor()
    assert isinstance(settings, SimpleNamespace)
    family = family_of(source.config(), str(folder))
    ours = family.image_inputs(settings)(_photos())["pixel_values"]
    reference = family.image_inputs(AutoImageProcessor.from_pretrained(folder))(_photos())
    assert ours.shape[-2:] == (180, 180)
    np.testing.assert_array_equal(ours, reference["pixel_values"])


def test_missing_statistics_fall_back_to_transformers(tiny_clip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, folder)
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if path.exists():
            data = json.loads(path.read_text())
            section = data.get("image_processor", data)
            section.pop("image_mean", None)
            path.write_text(json.dumps(data))
    settings = find_source(str(folder)).image_processor()
    assert not isinstance(settings, SimpleNamespace)
    assert list(settings.image_mean) == pytest.approx([0.48145466, 0.4578275, 0.40821073])


def test_reading_settings_does_not_import_torchvision(tiny_clip_dir: Path) -> None:
    import subprocess

    code = (
        "import sys; from indexer.models.source import find_source; "
        f"find_source({str(tiny_clip_dir)!r}).image_processor(); "
        "print('torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
