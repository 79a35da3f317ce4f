"""Geometry: Detections (validation, adapters, crop filters), IoU, crop windows."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.geometry import Detections, box_iou, crop_box, scale_box
from indexer.settings import DetectOptions


def make(boxes: list[list[float]], conf: list[float], labels: list[str]) -> Detections:
    return Detections(np.array(boxes, dtype=np.float32), np.array(conf), tuple(labels))


def test_shapes_are_validated() -> None:
    with pytest.raises(ValueError, match="disagree"):
        make([[0, 0, 1, 1]], [0.5, 0.6], ["a"])
    with pytest.raises(ValueError, match="finite"):
        make([[0, 0, np.nan, 1]], [0.5], ["a"])
    assert len(Detections.empty()) == 0
    assert Detections.empty().xyxy.shape == (0, 4)


def test_filtered_applies_confidence_min_side_dedupe_and_cap() -> None:
    det = make(
        [
            [0, 0, 100, 100],  # kept (best)
            [1, 1, 100, 100],  # near-duplicate of the first: dropped
            [200, 200, 210, 300],  # 10 px wide: below min side
            [300, 0, 400, 100],  # low confidence
            [0, 200, 150, 350],
            [400, 300, 500, 420],
        ],
        [0.9, 0.85, 0.9, 0.1, 0.8, 0.7],
        ["cat", "cat", "pole", "dog", "dog", "cup"],
    )
    out = det.filtered(
        DetectOptions(confidence=0.25, min_side=24, max_objects=2, dedupe_iou=0.9), 640, 480
    )
    assert out.labels == ("cat", "dog")
    assert np.allclose(out.xyxy[0], [0, 0, 100, 100])
    assert np.allclose(out.confidence, [0.9, 0.8])


def test_filtered_clips_boxes_to_photo() -> None:
    det = make([[-20, -10, 700, 500]], [0.9], ["couch"])
    out = det.filtered(DetectOptions(), 640, 480)
    assert out.xyxy.tolist() == [[0, 0, 640, 480]]


def test_scaled_maps_decoded_to_original_pixels() -> None:
    det = make([[10, 20, 30, 40]], [0.9], ["cat"])
    assert det.scaled(2.0, 4.0).xyxy.tolist() == [[20, 80, 60, 160]]


def test_from_transformers_adapter() -> None:
    out = {"boxes": np.array([[1, 2, 3, 4]]), "scores": np.array([0.7]), "labels": np.array([2])}
    det = Detections.from_transformers(out, {2: "car"})
    assert det.labels == ("car",) and det.xyxy.tolist() == [[1, 2, 3, 4]]


def test_box_iou() -> None:
    assert box_iou(
        np.array([0, 0, 10, 10]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    ) == pytest.approx([1.0, 1 / 3, 0.0])


def test_crop_box_pads_scales_and_clamps() -> None:
    # A 100x50 original decoded at half size (50x25): padding 10% of the box on each side.
    assert crop_box((20, 10, 60, 30), 0.1, (50, 25), (2.0, 2.0)) == (8, 4, 32, 16)
    # Clamped to the image, never empty.
    assert crop_box((-5, -5, 200, 200), 0.0, (50, 25), (2.0, 2.0)) == (0, 0, 50, 25)
    assert crop_box((49.9, 24.9, 50, 25), 0.0, (50, 25), (1.0, 1.0)) == (49, 24, 50, 25)


def test_scale_box_shifts_then_scales() -> None:
    assert scale_box((1, 2, 3, 4), 2.0, 3.0, dx=1, dy=1) == (4.0, 9.0, 8.0, 15.0)
