"""The torch-free YOLO runner: NMS, letterbox, recipe, and parity with ultralytics' predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from indexer.models.detector import Detector, LeanYoloSession, OpenVinoYoloSession
from indexer.models.yolo_openvino import (
    RECIPE_NAME,
    DetectorRecipe,
    Letterbox,
    end2end_rows,
    input_side,
    letterbox,
    nms,
    nms_rows,
    scale_back,
)
from indexer.settings import DetectOptions
from tests.fixtures import REPO_ROOT

COCO_IMAGES = REPO_ROOT.parent / "shared" / "assets" / "coco-dev" / "images"
REAL_YOLO = REPO_ROOT.parent / "shared" / "assets" / "detector" / "yolo11n-coco.pt"


@pytest.mark.parametrize(
    ("boxes", "scores", "iou", "kept"),
    [
        # two heavy overlaps: the better one stays
        ([[0, 0, 10, 10], [1, 0, 11, 10]], [0.5, 0.9], 0.7, [1]),
        # the same overlap under a looser threshold: both stay, best first
        ([[0, 0, 10, 10], [1, 0, 11, 10]], [0.5, 0.9], 0.9, [1, 0]),
        # disjoint boxes all stay, ordered by score
        ([[0, 0, 5, 5], [10, 10, 15, 15], [20, 20, 25, 25]], [0.2, 0.8, 0.5], 0.5, [1, 2, 0]),
        # a chain: the middle box is dropped by the best, the third survives the dropped one
        ([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8, 0.7], 0.3, [0, 2]),
    ],
)
def test_nms_keeps_the_best_of_each_overlap(boxes, scores, iou, kept) -> None:
    got = nms(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), iou)
    assert got.tolist() == kept


def _raw(rows: list[tuple[float, float, float, float, int, float]], classes: int) -> np.ndarray:
    """A graph output (4 + classes, anchors) from (cx, cy, w, h, class, score) anchors."""
    out = np.zeros((4 + classes, len(rows)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[:4, i] = (cx, cy, w, h)
        out[4 + cls, i] = score
    return out


def test_nms_rows_is_per_class_and_thresholded() -> None:
    raw = _raw(
        [
            (50, 50, 20, 20, 0, 0.9),  # kept
            (51, 50, 20, 20, 0, 0.8),  # same class, overlaps: dropped
            (51, 50, 20, 20, 1, 0.7),  # other class, same place: kept
            (200, 200, 10, 10, 2, 0.1),  # below the confidence: dropped
        ],
        classes=3,
    )
    rows = nms_rows(raw, confidence=0.25, max_det=10)
    assert rows[:, 5].tolist() == [0.0, 1.0]
    np.testing.assert_allclose(rows[0, :5], [40, 40, 60, 60, 0.9], rtol=1e-6)
    assert nms_rows(raw, confidence=0.95, max_det=10).shape == (0, 6)
    assert len(nms_rows(raw, confidence=0.25, max_det=1)) == 1


def test_end2end_rows_filter_and_cap() -> None:
    pred = np.array([[0, 0, 5, 5, 0.9, 3], [1, 1, 6, 6, 0.2, 1], [2, 2, 7, 7, 0.6, 0]], np.float32)
    assert end2end_rows(pred, 0.5, 10)[:, 5].tolist() == [3.0, 0.0]
    assert len(end2end_rows(pred, 0.5, 1)) == 1


@pytest.mark.parametrize(("imgsz", "stride", "side"), [(640, 32, 640), (500, 32, 512), (8, 32, 32)])
def test_input_side_rounds_up_to_the_stride(imgsz, stride, side) -> None:
    assert input_side(imgsz, stride) == side


@pytest.mark.parametrize(("w", "h"), [(640, 480), (480, 640), (1000, 50), (33, 17), (640, 640)])
def test_letterbox_then_scale_back_round_trips(w, h) -> None:
    image = np.full((h, w, 3), 200, np.uint8)
    padded, box = letterbox(image, 320)
    assert padded.shape == (320, 320, 3)
    # the photo's own pixels sit inside the padding, the rest is ultralytics' grey
    assert padded[box.pad_y, box.pad_x].tolist() == [200, 200, 200]
    padding = box.pad_x > 0 or box.pad_y > 0
    assert padded[0, 0].tolist() == ([114] * 3 if padding else [200] * 3)
    whole = np.array(
        [[box.pad_x, box.pad_y, box.pad_x + w * box.gain_x, box.pad_y + h * box.gain_y]],
        np.float32,
    )
    np.testing.assert_allclose(scale_back(whole, box, w, h)[0], [0, 0, w, h], atol=1e-3)


def test_scale_back_clips_to_the_photo() -> None:
    boxes = np.array([[-50, -50, 900, 900]], np.float32)
    out = scale_back(boxes, Letterbox(1.0, 1.0, 0, 0), 640, 480)
    assert out[0].tolist() == [0, 0, 640, 480]


def test_recipe_from_export_and_json(tmp_path) -> None:
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "metadata.yaml").write_text(
        "stride: 32\ntask: detect\nend2end: false\nnames:\n  0: person\n  1: cat\n"
    )
    recipe = DetectorRecipe.from_export(tmp_path)
    assert recipe.names == ("person", "cat") and recipe.xml == "m.xml" and recipe.runnable
    assert DetectorRecipe.from_json(recipe.to_json()) == recipe
    assert not DetectorRecipe("ab", 32, "segment", False, "m.xml").runnable


@pytest.mark.slow  # converts the tiny detector for OpenVINO
def test_detector_runs_torch_free_once_converted(tiny_yolo_path) -> None:
    first = Detector(str(tiny_yolo_path), backend="openvino")
    assert isinstance(first.session, LeanYoloSession)  # converted, then run without ultralytics
    again = Detector(str(tiny_yolo_path), backend="openvino")
    assert isinstance(again.session, LeanYoloSession)
    assert again.names == first.names and again.model_id == first.model_id
    image = Image.new("RGB", (300, 200), (90, 120, 30))
    a, b = first.detect([image], DetectOptions())[0], again.detect([image], DetectOptions())[0]
    np.testing.assert_array_equal(a.xyxy, b.xyxy)


@pytest.mark.slow  # converts the tiny detector for OpenVINO
def test_damaged_recipe_falls_back_to_ultralytics(tiny_yolo_path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OBJSEARCH_CACHE", str(tmp_path / "cache"))
    Detector(str(tiny_yolo_path), backend="openvino")
    recipe = next((tmp_path / "cache").rglob(RECIPE_NAME))
    recipe.write_text(json.dumps({"names": []}))  # unreadable: missing fields
    detector = Detector(str(tiny_yolo_path), backend="openvino")
    assert detector.backend == "openvino"
    assert len(detector.detect([Image.new("RGB", (64, 64))], DetectOptions())) == 1


def assert_same_as_ultralytics(weights: str, images: list[Image.Image]) -> int:
    """The lean runner and ultralytics' own ``predict`` on the same OpenVINO graph give the
    same labels, boxes within 1 px and scores within 1e-3 on every image; the boxes compared.
    """
    reference = OpenVinoYoloSession.load(weights, "detect")  # ultralytics runs the IR
    lean = LeanYoloSession.load(weights)
    assert lean is not None
    options = DetectOptions()
    compared = 0
    for i, image in enumerate(images):
        want = reference.predict([image], options, "cpu")[0]
        got = lean.predict([image], options, "cpu")[0]
        assert got.labels == want.labels, i
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1.0, err_msg=str(i))
        np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-3, err_msg=str(i))
        compared += len(want)
    return compared


@pytest.mark.slow  # converts the tiny detector for OpenVINO
def test_tiny_detector_boxes_match_ultralytics_predict_on_the_same_graph(tiny_yolo_path) -> None:
    """The parity check every CI run makes: a tiny random YOLO on photos of several sizes
    and aspect ratios (letterboxing both ways), with many boxes each."""
    rng = np.random.default_rng(7)
    sizes = [(640, 480), (480, 640), (300, 200), (1000, 120), (64, 64)]
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    images.append(Image.new("RGB", (320, 240), (90, 20, 20)))
    Detector(str(tiny_yolo_path), backend="openvino")  # converts once
    assert assert_same_as_ultralytics(str(tiny_yolo_path), images) > 20


@pytest.mark.slow  # the real YOLO11n, converted once, over real COCO photos
def test_boxes_match_ultralytics_predict_on_the_same_graph() -> None:
    """Same boxes within 1 px, same labels, same scores within 1e-3 on real photos."""
    if not (REAL_YOLO.is_file() and COCO_IMAGES.is_dir()):
        pytest.skip(f"the real detector and COCO photos are not at {REAL_YOLO.parent.parent}")
    photos = sorted(COCO_IMAGES.glob("*.jpg"))[:40]
    images = [Image.open(path).convert("RGB") for path in photos]
    assert assert_same_as_ultralytics(str(REAL_YOLO), images) > 100  # real objects
