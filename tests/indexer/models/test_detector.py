"""Detector: loading local weights, batched detection, clear load errors."""

from __future__ import annotations

import pytest
from PIL import Image

from indexer.errors import ModelLoadError
from indexer.models.detector import Detector
from indexer.settings import DetectOptions


@pytest.mark.slow  # converts the detector for OpenVINO (auto backend)
def test_detector_from_local_weights_runs_batched(tiny_yolo_path) -> None:
    detector = Detector(str(tiny_yolo_path))
    images = [
        Image.new("RGB", (320, 240), (120, 30, 30)),
        Image.new("RGB", (200, 300), (0, 90, 200)),
    ]
    results = detector.detect(images, DetectOptions())
    assert len(results) == 2
    for det, im in zip(results, images, strict=True):
        assert len(det) >= 1
        assert set(det.labels) <= set(detector.names.values())
        kept = det.filtered(DetectOptions(min_side=1), *im.size)
        assert (kept.xyxy[:, [0, 2]] <= im.width).all() and (
            kept.xyxy[:, [1, 3]] <= im.height
        ).all()


def test_missing_detector_names_both_ways(tmp_path) -> None:
    with pytest.raises(ModelLoadError) as info:
        Detector(str(tmp_path / "nope.pt"))
    message = str(info.value)
    assert "nope.pt" in message and "--detector" in message and "OBJSEARCH_DETECTOR" in message
