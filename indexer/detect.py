"""Object detection: photos -> :class:`Detections`, the currency between stages.

``Detections`` is a small validated record of boxes, confidences and class labels with
adapters from ultralytics results and Hugging Face object-detection outputs, so the rest
of objsearch never touches a detector library's types. :class:`Detector` wraps an
ultralytics model, runs it over batches of photos, and applies objsearch's own filters
(minimum crop side, near-duplicate removal, per-photo cap).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .accel import choose_backend, yolo_openvino_weights
from .config import DEFAULT_DETECTOR, ENV_DETECTOR, DetectOptions, configure_ultralytics, resolve
from .errors import ModelLoadError, first_line

log = logging.getLogger("objsearch")


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


class Detector:
    """An ultralytics detector loaded from a weights path or a name it can fetch.

    Loading never hangs offline: ultralytics is configured offline first, and any failure
    becomes a :class:`ModelLoadError` that names both ways to supply the model.
    """

    def __init__(
        self, weights: str | None = None, device: str = "cpu", *, backend: str | None = None
    ) -> None:
        configure_ultralytics()
        self.weights = resolve(weights, ENV_DETECTOR, DEFAULT_DETECTOR) or DEFAULT_DETECTOR
        self.device = device
        try:
            from ultralytics import YOLO

            self.model = YOLO(self.weights, task="detect")
            self.names: dict[int, str] = dict(self.model.names)
        except Exception as exc:  # ultralytics raises many types for bad/missing weights
            raise ModelLoadError(
                f"Could not load detector {self.weights!r}: {first_line(exc)}\n"
                "Supply it either as a local weights file (--detector PATH or "
                f"{ENV_DETECTOR}=PATH, e.g. a yolo11n.pt you downloaded) or as an ultralytics "
                "model name such as yolo11n.pt, which ultralytics downloads on a machine with "
                "internet access."
            ) from None
        self.model_id = (
            os.path.abspath(self.weights) if os.path.exists(self.weights) else self.weights
        )
        self.backend = choose_backend(backend, device)
        checkpoint = str(getattr(self.model, "ckpt_path", None) or self.weights)
        if self.backend == "openvino" and checkpoint.endswith(".pt") and os.path.isfile(checkpoint):
            from ultralytics import YOLO

            try:
                self.model = YOLO(yolo_openvino_weights(checkpoint), task="detect")
            except Exception as exc:  # a conversion problem must not stop indexing
                log.warning(
                    "OpenVINO conversion of the detector failed (%s); using PyTorch.",
                    first_line(exc),
                )
                self.backend = "torch"
        elif self.backend == "openvino":
            self.backend = "torch"  # not a .pt checkpoint (e.g. an export): run it as given

    def detect(self, images: Sequence[Image.Image], options: DetectOptions) -> list[Detections]:
        """Raw detections for a batch of RGB photos (one forward pass per batch).

        ``rect=False`` letterboxes every photo to the same square whatever its batch-mates:
        ultralytics otherwise pads a batch of one shape to a tight rectangle and a mixed
        batch to a square, so a photo's boxes would depend on which photos shared its batch
        and an incremental run would not reproduce a full one.
        """
        if not images:
            return []
        import torch

        threads = torch.get_num_threads()
        try:
            results = self._predict(images, options)
        finally:
            # ultralytics lowers torch's thread count on its first CPU predict (to cores - 1),
            # which would halve CLIP's speed on a 2-core machine: put it back.
            torch.set_num_threads(threads)
        return [Detections.from_ultralytics(r) for r in results]

    def _predict(self, images: Sequence[Image.Image], options: DetectOptions) -> Any:
        return self.model.predict(
            list(images),
            conf=min(options.confidence, 0.999),
            max_det=max(options.max_objects * 3, 1),
            imgsz=options.imgsz,
            device=self.device,
            half=self.device.startswith("cuda"),
            rect=False,
            verbose=False,
        )
