"""Detections: validation, adapters and objsearch's crop filters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexer.errors import ModelLoadError, ObjsearchError
from indexer.geometry import Detections, box_iou
from indexer.models.detector import Detector
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


def test_options_validate() -> None:
    with pytest.raises(ObjsearchError):
        DetectOptions(confidence=2)
    with pytest.raises(ObjsearchError):
        DetectOptions(padding=-0.1)


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
