"""Object detection: photos -> :class:`~indexer.geometry.Detections`.

:class:`Detector` loads an ultralytics model and runs it over batches of photos. Any
ultralytics model whose results carry boxes works: YOLOv8/11/26, RT-DETR, the
open-vocabulary YOLO-World and YOLOE, and segmentation or pose models (their boxes are
used). Each inference backend is one session class (load, predict -> ``Detections``):
PyTorch here, the OpenVINO export run by ultralytics, and, once a plain detection model
has been converted on this machine, the same export run by OpenVINO alone
(:mod:`indexer.models.yolo_openvino`: no torch, torchvision or ultralytics at run time).
The detector picks one and never branches on the backend again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from PIL import Image

from ..errors import NO_INTERNET_HINT, ModelLoadError, first_line
from ..geometry import Detections
from ..settings import (
    ENV_DETECTOR,
    DetectOptions,
    choose_backend,
    configure_ultralytics,
    resolve_detector,
)
from .lifecycle import serialised
from .openvino import yolo_openvino_weights
from .source import detector_weights
from .yolo_openvino import OpenVinoYoloRunner, cached_export, detector_thresholds, record_recipe

log = logging.getLogger("objsearch")


def _predict_options(options: DetectOptions, device: str) -> dict[str, Any]:
    """ultralytics ``predict`` arguments every session passes (3x boxes: filtering follows)."""
    confidence, max_det = detector_thresholds(options)
    return {
        "conf": confidence,
        "max_det": max_det,
        "device": device,
        "half": device.startswith("cuda"),
        "verbose": False,
    }


class YoloSession:
    """An ultralytics model run by PyTorch."""

    name = "torch"

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def load(cls, weights: str, task: str | None = None) -> YoloSession:
        """``YOLO(weights)``: ultralytics routes RT-DETR, YOLO-World and YOLOE checkpoints to
        their own classes and reads the task from the checkpoint."""
        from ultralytics import YOLO

        return cls(YOLO(weights, task=task))

    @property
    def task(self) -> str:
        return str(getattr(self.model, "task", "") or "detect")

    @property
    def open_vocabulary(self) -> bool:
        """YOLO-World and YOLOE detect whatever class names they are given."""
        return type(self.model).__name__ in ("YOLOWorld", "YOLOE")

    def predict(
        self, images: Sequence[Image.Image], options: DetectOptions, device: str
    ) -> list[Detections]:
        """``rect=False`` letterboxes every photo to the same square whatever its batch-mates:
        ultralytics otherwise pads a batch of one shape to a tight rectangle and a mixed
        batch to a square, so a photo's boxes would depend on which photos shared its batch
        and an incremental run would not reproduce a full one.
        """
        import torch

        threads = torch.get_num_threads()
        try:
            results = self.model.predict(
                list(images), imgsz=options.imgsz, rect=False, **_predict_options(options, device)
            )
        finally:
            # ultralytics lowers torch's thread count on its first CPU predict (to cores - 1),
            # which would halve CLIP's speed on a 2-core machine: put it back.
            torch.set_num_threads(threads)
        return [Detections.from_ultralytics(r) for r in results]

    @property
    def names(self) -> dict[int, str]:
        names = self.model.names
        return dict(names) if isinstance(names, dict) else dict(enumerate(names))

    def predict_tensor(self, batch: Any, options: DetectOptions, device: str) -> list[Detections]:
        """Detections on an already letterboxed (N, 3, S, S) batch in [0, 1] on ``device``.

        The first batch goes through ``predict``, which builds ultralytics' inference
        backend (fused, fp16 on CUDA). Later batches of a plain YOLO detection model call
        that backend and ultralytics' NMS directly, with the same thresholds: ``predict``
        would copy the whole batch back to host memory to build its ``Results``, which
        costs more than the model on a GPU.
        """
        predictor = getattr(self.model, "predictor", None)
        backend = getattr(predictor, "model", None)
        if predictor is None or backend is None or not self._plain_detector:
            results = self.model.predict(
                batch, imgsz=int(batch.shape[-1]), **_predict_options(options, device)
            )
            return [Detections.from_ultralytics(r) for r in results]
        from ultralytics.utils import nms

        same = _predict_options(options, device)  # the thresholds ``predict`` would use
        preds = backend(batch.half() if backend.fp16 else batch.float())
        rows = nms.non_max_suppression(
            preds,
            same["conf"],
            predictor.args.iou,
            max_det=same["max_det"],
            end2end=getattr(backend, "end2end", False),
        )
        side = int(batch.shape[-1])
        for r in rows:
            r[:, :4] = r[:, :4].clamp(0, side)  # as ``predict`` clips boxes to its input
        names = self.model.names
        return [Detections.from_yolo_rows(r.float().cpu().numpy(), names) for r in rows]

    @property
    def _plain_detector(self) -> bool:
        """A YOLO detection model, whose raw output is boxes + class scores (NMS applies)."""
        return type(self.model).__name__ == "YOLO" and self.task == "detect"


class OpenVinoYoloSession(YoloSession):
    """The same model exported to OpenVINO once (cached) and run by ultralytics."""

    name = "openvino"

    @classmethod
    def load(cls, weights: str, task: str | None = None) -> YoloSession:
        from ultralytics import YOLO

        return cls(YOLO(yolo_openvino_weights(weights), task=task))


class LeanYoloSession:
    """A converted plain detection model run by OpenVINO alone (see :mod:`.yolo_openvino`)."""

    name = "openvino"
    task = "detect"
    open_vocabulary = False

    def __init__(self, runner: OpenVinoYoloRunner) -> None:
        self.runner = runner
        self.names = runner.names

    @classmethod
    def load(cls, weights: str) -> LeanYoloSession | None:
        """The session for ``weights`` (a ``.pt``) if its export and recipe are cached here."""
        folder = cached_export(weights)
        recipe = record_recipe(folder) if folder is not None else None
        if folder is None or recipe is None or not recipe.runnable:
            return None
        return cls(OpenVinoYoloRunner.load(folder, recipe))

    def predict(
        self, images: Sequence[Image.Image], options: DetectOptions, device: str
    ) -> list[Detections]:
        return self.runner.predict(images, options)

    def predict_tensor(self, batch: Any, options: DetectOptions, device: str) -> list[Detections]:
        raise TypeError("letterboxed device batches need the PyTorch backend")


Session = YoloSession | LeanYoloSession


# Tasks whose results carry boxes: segmentation masks and pose keypoints are ignored.
BOX_TASKS = ("detect", "segment", "pose")


def _check_task(session: Session, weights: str) -> str:
    if session.task not in BOX_TASKS:
        raise ModelLoadError(
            f"Detector {weights!r} is a {session.task!r} model, which gives no object boxes. "
            "Use a detection model (YOLOv8/11/26, RT-DETR, YOLO-World, YOLOE; segmentation "
            "and pose models work too: their boxes are used)."
        )
    return session.task


def check_detector_file(weights: str) -> str:
    """Load ``weights`` as a detector and return its task, or raise ``ModelLoadError``."""
    configure_ultralytics()
    try:
        session = YoloSession.load(weights)
    except Exception as exc:
        raise ModelLoadError(f"Could not load detector {weights!r}: {first_line(exc)}") from None
    return _check_task(session, weights)


def detector_load_error(weights: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load detector {weights!r}: {reason}\n"
        "Supply it either as a local weights file (--detector PATH or "
        f"{ENV_DETECTOR}=PATH, e.g. a yolo11n.pt you downloaded) or as an ultralytics "
        "model name such as yolo11n.pt, which ultralytics downloads on a machine with "
        f"internet access. {NO_INTERNET_HINT}"
    )


def find_detector_weights(weights: str | None) -> str:
    """The detector weights to load, checked without loading them; else ModelLoadError."""
    name = resolve_detector(weights)
    try:
        return detector_weights(name)
    except FileNotFoundError as exc:
        raise detector_load_error(name, str(exc)) from None


class Detector:
    """An ultralytics detector loaded from a weights path or a name it can fetch.

    ``classes`` names what an open-vocabulary detector (YOLO-World, YOLOE) looks for;
    ``class_embeddings`` injects YOLOE's per-class text embeddings (1 x classes x dim),
    which otherwise come from a text model that ultralytics downloads on first use.
    Loading never hangs offline: ultralytics is configured offline first, and any failure
    becomes a :class:`ModelLoadError` that names both ways to supply the model.
    """

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        *,
        backend: str | None = None,
        classes: Sequence[str] | None = None,
        class_embeddings: Any = None,
    ) -> None:
        configure_ultralytics()
        self.weights = resolve_detector(weights)
        self.device = device
        path = find_detector_weights(self.weights)
        self.classes = tuple(c.strip() for c in classes or () if c.strip())
        # A local file is recorded by its absolute path, a fetched name as the name.
        local = os.path.exists(os.path.expanduser(self.weights))
        self.model_id = os.path.abspath(path) if local else self.weights
        openvino = choose_backend(backend, device) == "openvino"
        lean = self._lean_session(path) if openvino and not self.classes else None
        if lean is not None:
            self.session: Session = lean
            self.task = lean.task
        else:
            self.session = self._ultralytics_session(path, openvino, class_embeddings)
        self.names: dict[int, str] = self.session.names
        self.weights = path

    def _lean_session(self, path: str) -> LeanYoloSession | None:
        """The torch-free session when this machine has converted ``path`` before."""
        if not (path.endswith(".pt") and os.path.isfile(path)):
            return None
        try:
            return LeanYoloSession.load(path)
        except Exception as exc:  # a damaged cache entry: ultralytics converts it again
            log.debug("Cached detector export unusable (%s); loading it with ultralytics.", exc)
            return None

    def _ultralytics_session(self, path: str, openvino: bool, class_embeddings: Any) -> Session:
        """The model loaded by ultralytics, then converted for OpenVINO where it can be."""
        try:
            session = YoloSession.load(path)
        except Exception as exc:  # ultralytics raises many types for bad/missing weights
            raise detector_load_error(self.weights, first_line(exc)) from None
        self.session = session
        self.task = _check_task(session, self.weights)
        if self.classes:
            self._set_classes(class_embeddings)
        # Open-vocabulary classes are set at run time, so those models stay on PyTorch.
        if openvino and not session.open_vocabulary:
            return self._openvino_session(path)
        return session

    def _set_classes(self, class_embeddings: Any) -> None:
        """Point an open-vocabulary detector at ``self.classes``."""
        assert isinstance(self.session, YoloSession)
        model = self.session.model
        if not self.session.open_vocabulary:
            raise ModelLoadError(
                "--detector-classes needs an open-vocabulary detector (YOLO-World or YOLOE); "
                f"{self.weights!r} only knows its own {len(model.names)} classes."
            )
        try:
            if class_embeddings is None:
                model.set_classes(list(self.classes))
            else:
                model.set_classes(list(self.classes), class_embeddings)
        except Exception as exc:
            raise ModelLoadError(
                f"Could not set the detector classes {', '.join(self.classes)}: "
                f"{first_line(exc)}\nOpen-vocabulary detectors encode class names with a text "
                "model that ultralytics downloads on first use: run once on a machine with "
                'internet access (see the README\'s "Detectors" section).'
            ) from None

    def _openvino_session(self, path: str) -> Session:
        """The OpenVINO session, or the PyTorch one when the model cannot be converted.

        A plain detection model runs torch-free from its first run on (the conversion
        records what :class:`LeanYoloSession` needs); other tasks run the export through
        ultralytics.
        """
        assert isinstance(self.session, YoloSession)
        checkpoint = str(getattr(self.session.model, "ckpt_path", None) or path)
        if not (checkpoint.endswith(".pt") and os.path.isfile(checkpoint)):
            return self.session  # not a .pt checkpoint (e.g. an export): run it as given
        try:
            if self.task == "detect" and type(self.session.model).__name__ == "YOLO":
                yolo_openvino_weights(checkpoint)
                lean = LeanYoloSession.load(checkpoint)
                if lean is not None:
                    return lean
            return OpenVinoYoloSession.load(checkpoint, self.task)
        except Exception as exc:  # a conversion problem must not stop indexing
            log.warning(
                "OpenVINO conversion of the detector failed (%s); using PyTorch.", first_line(exc)
            )
            return self.session

    @property
    def backend(self) -> str:
        """The backend that runs the model: ``torch`` or ``openvino``."""
        return self.session.name

    @serialised
    def detect(self, images: Sequence[Image.Image], options: DetectOptions) -> list[Detections]:
        """Raw detections for a batch of RGB photos, each in its own pixels."""
        if not images:
            return []
        return self.session.predict(images, options, self.device)

    @serialised
    def detect_tensor(self, batch: Any, options: DetectOptions) -> list[Detections]:
        """Raw detections for a letterboxed batch on the device, in the batch's pixels
        (see :func:`indexer.indexing.device_regions.letterbox`)."""
        if not len(batch):
            return []
        return self.session.predict_tensor(batch, options, self.device)
