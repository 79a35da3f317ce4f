"""Model and device choices, resolved from flags, environment variables and defaults.

One place decides which CLIP model, detector and device a run uses, so the CLI, the Python
API and the benchmarks agree. Precedence is: explicit argument > environment variable >
what the index was built with (for search) > built-in default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DETECTOR = "yolo11n.pt"
DEFAULT_DEVICE = "auto"

ENV_CLIP_MODEL = "OBJSEARCH_CLIP_MODEL"
ENV_DETECTOR = "OBJSEARCH_DETECTOR"
ENV_DEVICE = "OBJSEARCH_DEVICE"
ENV_PRECISION = "OBJSEARCH_PRECISION"

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def configure_ultralytics() -> None:
    """Keep ultralytics off the network and quiet before it is imported.

    It otherwise checks connectivity, syncs settings, tries to auto-install packages and
    downloads fonts; on an offline machine those calls hang or warn. Users can still override
    each variable in their environment.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    # ultralytics sets OMP_NUM_THREADS=1 at import when it is unset, which would leave
    # every OpenMP library (FAISS, torch) on one core; keep the machine's default instead.
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))


def resolve(value: str | None, env: str, default: str | None) -> str | None:
    """Return the first of: explicit value, environment variable, default."""
    if value:
        return value
    from_env = os.environ.get(env, "").strip()
    return from_env or default


def resolve_device(device: str | None = None) -> str:
    """Map ``auto``/``cpu``/``cuda`` (or ``cuda:N``) to a concrete torch device string."""
    choice = (resolve(device, ENV_DEVICE, DEFAULT_DEVICE) or DEFAULT_DEVICE).lower()
    base = choice.split(":", 1)[0]
    if base not in DEVICES:
        from .errors import ObjsearchError

        raise ObjsearchError(f"Unknown device {choice!r}: use one of auto, cpu, cuda (or cuda:N).")
    import torch

    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        from .errors import ObjsearchError

        raise ObjsearchError(
            "--device cuda was asked for, but torch sees no CUDA GPU on this machine. "
            "Use --device cpu (or auto)."
        )
    return choice


@dataclass(frozen=True)
class DetectOptions:
    """Detector knobs. Defaults favour recall of real objects over tiny clutter.

    ``padding`` widens each crop by a fraction of the box size on every side, because CLIP
    recognises an object better with a little context than with a tight cut.
    """

    confidence: float = 0.25
    max_objects: int = 20
    min_side: int = 24
    padding: float = 0.1
    dedupe_iou: float = 0.9
    imgsz: int = 640

    def __post_init__(self) -> None:
        from .errors import ObjsearchError

        if not 0.0 <= self.confidence <= 1.0:
            raise ObjsearchError(f"confidence must be in [0, 1], got {self.confidence}")
        if self.max_objects < 0:
            raise ObjsearchError(f"max objects must be >= 0, got {self.max_objects}")
        if self.min_side < 1:
            raise ObjsearchError(f"minimum crop side must be >= 1 px, got {self.min_side}")
        if not 0.0 <= self.padding <= 1.0:
            raise ObjsearchError(f"crop padding must be in [0, 1], got {self.padding}")
        if not 0.0 < self.dedupe_iou <= 1.0:
            raise ObjsearchError(f"dedupe IoU must be in (0, 1], got {self.dedupe_iou}")
