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
    assert '"No internet?" in the objsearch README' in message


@pytest.fixture(scope="module")
def yaml_detectors(tmp_path_factory) -> dict[str, str]:
    """Random ultralytics models of other kinds, built from the yaml files ultralytics ships."""
    from ultralytics import RTDETR, YOLO

    folder = tmp_path_factory.mktemp("yaml_detectors")
    specs = {
        "rtdetr": (RTDETR, "yolov8n-rtdetr.yaml"),
        "yolo26": (YOLO, "yolo26n.yaml"),
        "seg": (YOLO, "yolo11n-seg.yaml"),
        "pose": (YOLO, "yolo11n-pose.yaml"),
        "cls": (YOLO, "yolo11n-cls.yaml"),
        "obb": (YOLO, "yolo11n-obb.yaml"),
        "world": (YOLO, "yolov8s-worldv2.yaml"),
        "yoloe": (YOLO, "yoloe-11s.yaml"),
    }
    paths = {}
    for name, (cls, spec) in specs.items():
        paths[name] = str(folder / f"{name}.pt")
        cls(spec).save(paths[name])
    return paths


_ANY_BOX = DetectOptions(confidence=0.0, max_objects=5, min_side=1)


@pytest.mark.slow  # builds eight extra ultralytics models
@pytest.mark.parametrize(
    ("kind", "task", "model_class"),
    [
        ("rtdetr", "detect", "RTDETR"),
        ("yolo26", "detect", "YOLO"),
        ("seg", "segment", "YOLO"),
        ("pose", "pose", "YOLO"),
    ],
)
def test_other_ultralytics_models_give_boxes(yaml_detectors, kind, task, model_class) -> None:
    """YOLO26 and RT-DETR (routed to its own predictor) detect; segmentation and pose models
    give their boxes."""
    detector = Detector(yaml_detectors[kind], "cpu", backend="torch")
    assert detector.task == task and type(detector.session.model).__name__ == model_class
    found = detector.detect([Image.new("RGB", (320, 240), (90, 120, 20))], _ANY_BOX)[0]
    assert len(found) > 0 and found.xyxy.shape[1] == 4
    assert set(found.labels) <= set(detector.names.values())


@pytest.mark.slow  # builds eight extra ultralytics models
@pytest.mark.parametrize(("kind", "task"), [("cls", "classify"), ("obb", "obb")])
def test_models_without_boxes_are_refused(yaml_detectors, kind: str, task: str) -> None:
    with pytest.raises(ModelLoadError, match=f"is a '{task}' model, which gives no object boxes"):
        Detector(yaml_detectors[kind], "cpu")


@pytest.mark.slow  # builds eight extra ultralytics models
def test_open_vocabulary_classes_with_injected_text_embeddings(yaml_detectors) -> None:
    """YOLOE takes the class names' text embeddings; a random tensor stands in for them."""
    import torch

    detector = Detector(
        yaml_detectors["yoloe"],
        "cpu",
        backend="openvino",  # open-vocabulary models stay on PyTorch: classes are set at run time
        classes=["flowerpot", " butterfly ", ""],
        class_embeddings=torch.randn(1, 2, 512, generator=torch.Generator().manual_seed(0)),
    )
    assert detector.names == {0: "flowerpot", 1: "butterfly"} and detector.backend == "torch"
    found = detector.detect([Image.new("RGB", (320, 240), (20, 20, 200))], _ANY_BOX)[0]
    assert len(found) and set(found.labels) <= {"flowerpot", "butterfly"}


@pytest.mark.slow  # builds eight extra ultralytics models
def test_open_vocabulary_text_model_missing_offline_is_clear(yaml_detectors) -> None:
    """YOLO-World encodes class names with a CLIP it downloads: offline that must say so."""
    with pytest.raises(ModelLoadError) as info:
        Detector(yaml_detectors["world"], "cpu", classes=["flowerpot", "butterfly"])
    message = str(info.value)
    assert "flowerpot, butterfly" in message and "internet" in message
    # Without classes it runs with the vocabulary stored in the checkpoint.
    assert len(Detector(yaml_detectors["world"], "cpu", backend="torch").names) == 80


def test_classes_for_a_closed_vocabulary_detector_are_refused(tiny_yolo_path) -> None:
    with pytest.raises(ModelLoadError, match="needs an open-vocabulary detector"):
        Detector(str(tiny_yolo_path), "cpu", classes=["flowerpot"])


def test_letterboxed_batches_skip_predict_after_the_first(
    tiny_yolo_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct backend + NMS path gives exactly what ``predict`` gave on the same batch."""
    import torch

    from indexer.indexing.device_regions import letterbox

    detector = Detector(str(tiny_yolo_path), "cpu", backend="torch")
    images = [torch.randint(0, 255, (3, 120, 160), dtype=torch.uint8) for _ in range(3)]
    batch, _, _ = letterbox(images, 320)
    options = DetectOptions(imgsz=320)
    first = detector.detect_tensor(batch, options)  # through predict: builds the backend

    def no_predict(*args: object, **kwargs: object) -> None:
        raise AssertionError("predict ran again")

    monkeypatch.setattr(detector.session.model, "predict", no_predict)
    second = detector.detect_tensor(batch, options)

    assert sum(len(d) for d in first) > 0
    for a, b in zip(first, second, strict=True):
        assert a.labels == b.labels
        assert (a.xyxy == b.xyxy).all() and (a.confidence == b.confidence).all()
