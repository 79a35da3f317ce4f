"""OpenVINO acceleration for CPU inference, with a one-time conversion cache.

On CPUs, OpenVINO runs the same CLIP and YOLO graphs markedly faster than eager PyTorch
(fused kernels, and bf16 on CPUs that have bf16 units); see the benchmarks in the README.
Models are converted once per machine and cached under
:func:`indexer.settings.cache_dir`, keyed by a digest of the weights, so later runs only compile.
Conversions are written to a temporary folder and renamed into place, so two processes
converting at once, or a run killed mid-conversion, never leave a half-written model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..settings import cache_dir

log = logging.getLogger("objsearch")


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished conversion into place; another process may have won the race."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _ov_precision(precision: str) -> str:
    return "bf16" if precision == "bf16" else "f32"


def _weights_key(model: Any, prefixes: tuple[str, ...]) -> str:
    """A digest of the config and of the weights under ``prefixes`` (cheap: a sample + sums)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(model.config.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        if name.startswith(prefixes):
            flat = tensor.detach().float().flatten()
            digest.update(name.encode())
            digest.update(flat[:1024].numpy().tobytes())
            digest.update(str(float(flat.sum())).encode())
    return digest.hexdigest()


def _compile_cached(
    name: str,
    key: str,
    module: Callable[[], Any],
    example: tuple[Any, ...],
    shapes: list[Any],
    precision: str,
) -> Any:
    """Convert ``module()`` once (cached under ``name-key``) and compile it for the CPU.

    ``module`` is only called when no converted copy exists yet.
    """
    import openvino as ov
    import torch

    target = cache_dir() / "openvino" / f"{name}-{key}"
    xml = target / "model.xml"
    if not xml.exists():
        module = module()
        log.info("Converting the %s for OpenVINO (once per model)...", name.replace("-", " "))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer deprecation chatter
            converted = ov.convert_model(module.eval(), example_input=example, input=shapes)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        ov.save_model(converted, tmp / "model.xml", compress_to_fp16=False)
        _publish(tmp, target)
    config = {"INFERENCE_PRECISION_HINT": _ov_precision(precision), "PERFORMANCE_HINT": "LATENCY"}
    return ov.Core().compile_model(str(xml), "CPU", config).create_infer_request()


def _features(out: Any) -> Any:
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


def compile_clip_vision(
    load_model: Callable[[], Any], key: str | None, image_size: int, precision: str
) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping (N, 3, H, W) float32 pixels to projected image features.

    ``key`` identifies the model's files; without one the weights are loaded and digested.
    """
    import openvino as ov
    import torch

    class Vision(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return _features(self.clip.get_image_features(pixel_values=pixel_values))

    prefixes = ("vision_model", "visual_projection")
    request = _compile_cached(
        "clip-image-encoder",
        key or _weights_key(load_model(), prefixes),
        lambda: Vision(load_model()),
        (torch.zeros(2, 3, image_size, image_size),),
        [ov.PartialShape([-1, 3, image_size, image_size])],
        precision,
    )

    def run(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: np.ascontiguousarray(pixels, dtype=np.float32)})[0])

    return run


def compile_clip_text(
    load_model: Callable[[], Any], key: str | None, precision: str
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function mapping (input_ids, attention_mask) int64 arrays to projected text features."""
    import openvino as ov
    import torch

    class Text(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            return _features(out)

    ids = torch.ones(2, 7, dtype=torch.int64)
    request = _compile_cached(
        "clip-text-encoder",
        key or _weights_key(load_model(), ("text_model", "text_projection")),
        lambda: Text(load_model()),
        (ids, torch.ones_like(ids)),
        [ov.PartialShape([-1, -1]), ov.PartialShape([-1, -1])],
        precision,
    )

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {
            0: np.ascontiguousarray(input_ids, np.int64),
            1: np.ascontiguousarray(attention_mask, np.int64),
        }
        return np.asarray(request.infer(feeds)[0])

    return run


def yolo_openvino_weights(weights: str) -> str:
    """An ultralytics OpenVINO export of ``weights`` (a local ``.pt``), converted once."""
    from ultralytics import YOLO

    with open(weights, "rb") as fh:
        key = hashlib.blake2b(fh.read(), digest_size=12).hexdigest()
    stem = Path(weights).stem
    target = cache_dir() / "openvino" / f"yolo-{key}"
    exported = target / f"{stem}_openvino_model"
    if not (exported / f"{stem}.xml").exists():
        log.info("Converting the detector for OpenVINO (once per model)...")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".yolo-", dir=target.parent))
        shutil.copy(weights, tmp / f"{stem}.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer deprecation chatter
            YOLO(str(tmp / f"{stem}.pt"), task="detect").export(
                format="openvino", dynamic=True, half=False, verbose=False
            )
        (tmp / f"{stem}.pt").unlink()
        _publish(tmp, target)
    return str(exported)


class OpenVinoClipSession:
    """CLIP's image and text encoders compiled for the CPU by OpenVINO (converted once)."""

    name = "openvino"

    def __init__(
        self,
        vision: Callable[[np.ndarray], np.ndarray],
        text: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        self._vision = vision
        self._text = text

    @classmethod
    def load(
        cls, load_model: Callable[[], Any], key: str | None, image_size: int, precision: str
    ) -> OpenVinoClipSession:
        """Compile both encoders; ``load_model`` is only called when a conversion is needed."""
        return cls(
            compile_clip_vision(load_model, key, image_size, precision),
            compile_clip_text(load_model, key, precision),
        )

    def image_features(self, pixels: np.ndarray) -> np.ndarray:
        return self._vision(pixels)

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._text(input_ids, attention_mask)
