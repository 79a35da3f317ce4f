"""Boxes and crops: :class:`Detections` (the currency between stages), IoU, crop windows.

Pure data and arithmetic, shared by the write side (detect -> crop -> embed) and the read
side (refining a hit inside its crop), so both cut a box out of a photo the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .settings import DetectOptions

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detections:
    """Boxes for one photo, ``xyxy`` in pixels of the image they were detected on."""

    xyxy: np.ndarray
    confidence: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        if len(conf) != len(xyxy) or len(self.labels) != len(xyxy):
            raise ValueError(
                f"Detections fields disagree: {len(xyxy)} boxes, {len(conf)} confidences, "
                f"{len(self.labels)} labels"
            )
        if len(xyxy) and not np.all(np.isfinite(xyxy)):
            raise ValueError("Detections boxes must be finite")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "labels", tuple(str(lb) for lb in self.labels))

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), ())

    @classmethod
    def from_ultralytics(cls, result: Any) -> Detections:
        """From one ``ultralytics.engine.results.Results`` (one photo)."""
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return cls.empty()
        names = result.names
        class_ids = boxes.cls.cpu().numpy().astype(int)
        return cls(
            boxes.xyxy.cpu().numpy(),
            boxes.conf.cpu().numpy(),
            tuple(names[int(c)] for c in class_ids),
        )

    @classmethod
    def from_yolo_rows(cls, rows: np.ndarray, names: Mapping[int, str]) -> Detections:
        """From ultralytics NMS rows: (N, 6+) of x1, y1, x2, y2, confidence, class id."""
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, rows.shape[-1] if rows.size else 6)
        return cls(rows[:, :4], rows[:, 4], tuple(names[int(c)] for c in rows[:, 5]))

    @classmethod
    def from_transformers(
        cls, output: Mapping[str, Any], id2label: Mapping[int, str]
    ) -> Detections:
        """From ``processor.post_process_object_detection(...)[i]`` (boxes, scores, labels)."""
        boxes = np.asarray(_to_numpy(output["boxes"]), dtype=np.float32).reshape(-1, 4)
        scores = _to_numpy(output["scores"])
        labels = _to_numpy(output["labels"]).astype(int)
        return cls(boxes, scores, tuple(id2label[int(i)] for i in labels))

    def select(self, mask: np.ndarray) -> Detections:
        """The subset where ``mask`` (bool array or index array) selects."""
        idx = np.arange(len(self))[mask]
        return Detections(self.xyxy[idx], self.confidence[idx], tuple(self.labels[i] for i in idx))

    def scaled(self, sx: float, sy: float) -> Detections:
        """Boxes multiplied by per-axis factors (decoded -> original pixels)."""
        factor = np.array([sx, sy, sx, sy], dtype=np.float32)
        return Detections(self.xyxy * factor, self.confidence, self.labels)

    def clipped(self, width: int, height: int) -> Detections:
        """Boxes clipped to the image bounds."""
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        return Detections(xyxy, self.confidence, self.labels)

    def filtered(self, options: DetectOptions, width: int, height: int) -> Detections:
        """Apply objsearch's crop rules: confidence, minimum side, near-duplicates, cap.

        Dropping near-duplicate boxes (same object found twice, IoU above
        ``options.dedupe_iou`` regardless of class) and tiny boxes before embedding saves
        CLIP passes that would only add noise to the results.
        """
        det = self.clipped(width, height)
        if not len(det):
            return det
        w = det.xyxy[:, 2] - det.xyxy[:, 0]
        h = det.xyxy[:, 3] - det.xyxy[:, 1]
        keep = (det.confidence >= options.confidence) & (np.minimum(w, h) >= options.min_side)
        det = det.select(keep)
        order = np.argsort(-det.confidence, kind="stable")
        chosen: list[int] = []
        for i in order:
            if len(chosen) >= options.max_objects:
                break
            duplicate = (
                chosen
                and options.dedupe_iou < 1.0
                and box_iou(det.xyxy[i], det.xyxy[chosen]).max() > options.dedupe_iou
            )
            if duplicate:
                continue
            chosen.append(int(i))
        return det.select(np.array(chosen, dtype=int))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box against an (N, 4) array of boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def crop_box(
    box: Any, padding: float, size: tuple[int, int], scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """The crop of a decoded image for an original-pixel ``box``, widened by ``padding``.

    ``padding`` is a fraction of the box size added on every side; ``size`` is the decoded
    image's (width, height) and ``scale`` its original pixels per decoded pixel. The crop is
    clamped to the image and never empty.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = scale
    px, py = (x2 - x1) * padding, (y2 - y1) * padding
    w, h = size
    left = int(max(0, (x1 - px) / sx))
    top = int(max(0, (y1 - py) / sy))
    right = int(min(w, np.ceil((x2 + px) / sx)))
    bottom = int(min(h, np.ceil((y2 + py) / sy)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def scale_box(box: Box, sx: float, sy: float, dx: float = 0, dy: float = 0) -> Box:
    """``box`` shifted by (dx, dy) then scaled per axis (decoded crop -> original pixels)."""
    x1, y1, x2, y2 = box
    return ((x1 + dx) * sx, (y1 + dy) * sy, (x2 + dx) * sx, (y2 + dy) * sy)
