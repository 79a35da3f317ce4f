"""A converted YOLO detector run by OpenVINO alone: letterbox, inference and NMS, no torch.

ultralytics converts a detector to OpenVINO once (see :func:`.openvino.yolo_openvino_weights`)
and could run the result, but importing it means importing torch and torchvision and warming
up its predictor: seconds of every index run, and hundreds of MiB. The graph itself needs
none of that. This module does the three steps around it with NumPy and OpenCV, with the
same arithmetic as ultralytics' ``predict`` (its letterbox, its NMS thresholds and order,
its box scaling), so the boxes agree with ultralytics on the same IR (a test checks it on
real photos):

* :class:`DetectorRecipe`: what the graph needs around it (class names, input side, stride,
  whether NMS is in the graph), recorded as JSON beside the conversion;
* :func:`letterbox` and :func:`scale_back`: photo -> square input, and boxes back;
* :func:`nms_rows`: the best class per anchor, the confidence threshold, class-wise NMS;
* :class:`OpenVinoYoloRunner`: the session (``load``, then ``predict``).

Only plain detection models with a stored recipe take this path; segmentation, pose,
RT-DETR and open-vocabulary models keep running through ultralytics.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..geometry import Detections
from ..settings import DetectOptions

log = logging.getLogger("objsearch")

RECIPE_NAME = "objsearch-detector.json"
PAD_VALUE = 114  # ultralytics' grey letterbox padding
IOU_THRESHOLD = 0.7  # ultralytics' default NMS IoU for predict
MAX_WH = 7680  # class offset that keeps boxes of different classes apart in one NMS pass
MAX_NMS = 30000  # boxes kept for NMS, best first


@dataclass(frozen=True)
class DetectorRecipe:
    """What running a converted YOLO graph needs besides the graph (read from its export).

    ``end2end`` graphs (YOLO26, or exports with NMS inside) output final rows of
    ``x1, y1, x2, y2, score, class``; the others output ``(4 + classes, anchors)`` and
    need :func:`nms_rows`.
    """

    names: tuple[str, ...]
    stride: int
    task: str
    end2end: bool
    xml: str  # the graph's file name inside its export folder

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "names": list(self.names)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> DetectorRecipe:
        data = json.loads(text)
        return cls(
            names=tuple(str(n) for n in data["names"]),
            stride=int(data["stride"]),
            task=str(data["task"]),
            end2end=bool(data["end2end"]),
            xml=str(data["xml"]),
        )

    @classmethod
    def from_export(cls, folder: Path) -> DetectorRecipe:
        """From ultralytics' ``metadata.yaml`` in an export folder."""
        import yaml

        meta = yaml.safe_load((folder / "metadata.yaml").read_text(encoding="utf-8"))
        names = meta["names"]
        ordered = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
        xml = next(folder.glob("*.xml")).name
        return cls(
            names=tuple(str(n) for n in ordered),
            stride=int(max(meta.get("stride", 32), 1)),
            task=str(meta.get("task", "detect")),
            end2end=bool(meta.get("end2end") or (meta.get("args") or {}).get("nms")),
            xml=xml,
        )

    @property
    def runnable(self) -> bool:
        """Whether :class:`OpenVinoYoloRunner` can run this graph (plain detection)."""
        return self.task == "detect"


def record_recipe(folder: Path) -> DetectorRecipe | None:
    """Write the recipe of the export in ``folder`` beside it (once); None when unreadable."""
    path = folder / RECIPE_NAME
    try:
        if path.is_file():
            return DetectorRecipe.from_json(path.read_text(encoding="utf-8"))
        recipe = DetectorRecipe.from_export(folder)
        tmp = path.with_name(f".{RECIPE_NAME}.tmp")
        tmp.write_text(recipe.to_json(), encoding="utf-8")
        tmp.replace(path)
        return recipe
    except Exception as exc:  # an export ultralytics laid out differently: keep its own path
        log.debug("No detector recipe for %s: %s", folder, exc)
        return None


def input_side(imgsz: int, stride: int) -> int:
    """The square input side for ``imgsz``: rounded up to the stride, as ultralytics does."""
    return max(math.ceil(imgsz / stride) * stride, stride)


@dataclass(frozen=True)
class Letterbox:
    """Where a photo sits inside the square input: its scale per axis and its padding."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, Letterbox]:
    """``image`` (H, W, 3 uint8) resized with its aspect kept and padded to ``side`` square.

    The arithmetic of ultralytics' ``LetterBox`` (centred, scale-up allowed, OpenCV's
    bilinear resize, padding rounded the same way), so the graph sees the same pixels.
    """
    import cv2

    h, w = image.shape[:2]
    r = min(side / h, side / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (side - new_w) / 2, (side - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return padded, Letterbox(new_w / w, new_h / h, left, top)


def scale_back(boxes: np.ndarray, box: Letterbox, width: int, height: int) -> np.ndarray:
    """Input-square boxes -> the photo's pixels, clipped to it (ultralytics' ``scale_boxes``)."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - box.pad_x) / box.gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - box.pad_y) / box.gain_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, best score first (torchvision's ``nms`` rule: a box is
    dropped when its IoU with a kept, better box is above ``iou``)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def nms_rows(
    pred: np.ndarray, confidence: float, max_det: int, iou: float = IOU_THRESHOLD
) -> np.ndarray:
    """One photo's raw output ``(4 + classes, anchors)`` -> rows ``x1 y1 x2 y2 score class``.

    The best class per anchor above ``confidence``, boxes from centre/size to corners,
    NMS per class (boxes offset by class), at most ``max_det`` rows, best first.
    """
    pred = np.asarray(pred, dtype=np.float32)
    scores_all = pred[4:]
    best = scores_all.max(axis=0)
    candidates = np.flatnonzero(best > confidence)
    if not candidates.size:
        return np.zeros((0, 6), np.float32)
    x = pred[:, candidates].T  # (n, 4 + classes)
    cls = x[:, 4:].argmax(axis=1)
    score = x[np.arange(len(x)), 4 + cls]
    keep = score > confidence
    x, cls, score = x[keep], cls[keep], score[keep]
    if len(x) > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        x, cls, score = x[top], cls[top], score[top]
    half = x[:, 2:4] / 2
    corners = np.concatenate([x[:, :2] - half, x[:, :2] + half], axis=1)
    kept = nms(corners + (cls[:, None] * MAX_WH).astype(np.float32), score, iou)[:max_det]
    return np.concatenate(
        [corners[kept], score[kept, None], cls[kept, None].astype(np.float32)], axis=1
    )


def end2end_rows(pred: np.ndarray, confidence: float, max_det: int) -> np.ndarray:
    """Final rows from a graph with NMS inside: those above ``confidence``, at most ``max_det``."""
    pred = np.asarray(pred, dtype=np.float32)
    return pred[pred[:, 4] > confidence][:max_det, :6]


def detector_thresholds(options: DetectOptions) -> tuple[float, int]:
    """The confidence and box cap every detector session uses (3x boxes: filtering follows)."""
    return min(options.confidence, 0.999), max(options.max_objects * 3, 1)


class OpenVinoYoloRunner:
    """A converted YOLO detection graph compiled for the CPU, with its recipe (a session)."""

    name = "openvino"
    task = "detect"
    open_vocabulary = False

    def __init__(self, request: Any, recipe: DetectorRecipe) -> None:
        self._request = request
        self.recipe = recipe
        self.names: dict[int, str] = dict(enumerate(recipe.names))

    @classmethod
    def load(
        cls, folder: Path, recipe: DetectorRecipe, precision: str | None = None
    ) -> OpenVinoYoloRunner:
        """Compile the graph in ``folder`` (an ultralytics OpenVINO export).

        The compiled blob is cached like the embedding model's. ``None`` runs the graph in
        OpenVINO's default precision for this CPU, as ultralytics' own OpenVINO backend
        does, so the boxes agree with it: bf16 where the CPU has bf16 units (1.6x faster
        than fp32 for YOLO11n on a Zen 4 CPU), else fp32.
        """
        from .openvino import compile_ir

        return cls(compile_ir(folder / recipe.xml, precision), recipe)

    def predict(self, images: Sequence[Image.Image], options: DetectOptions) -> list[Detections]:
        """Detections for each RGB photo, in its pixels (one inference per photo)."""
        side = input_side(options.imgsz, self.recipe.stride)
        confidence, max_det = detector_thresholds(options)
        out: list[Detections] = []
        for image in images:
            rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
            padded, box = letterbox(rgb, side)
            tensor = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
            tensor /= 255.0
            pred = np.asarray(self._request.infer({0: tensor})[0])[0]
            if self.recipe.end2end:
                rows = end2end_rows(pred, confidence, max_det)
            else:
                rows = nms_rows(pred, confidence, max_det)
            rows[:, :4] = scale_back(rows[:, :4], box, rgb.shape[1], rgb.shape[0])
            out.append(Detections.from_yolo_rows(rows, self.names))
        return out


def cached_export(weights: str) -> Path | None:
    """The OpenVINO export of the ``.pt`` file ``weights`` if this machine converted it."""
    from .openvino import yolo_export_dir

    folder = yolo_export_dir(weights)
    return folder if (folder / RECIPE_NAME).is_file() else None


__all__ = [
    "DetectorRecipe",
    "Letterbox",
    "OpenVinoYoloRunner",
    "cached_export",
    "detector_thresholds",
    "input_side",
    "letterbox",
    "nms",
    "nms_rows",
    "record_recipe",
    "scale_back",
]
