"""OpenVINO acceleration for CPU inference, with a one-time conversion cache.

On CPUs, OpenVINO runs the same image/text encoder and YOLO graphs markedly faster than eager PyTorch
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
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..settings import cache_dir
from .families import Family

log = logging.getLogger("objsearch")


def import_openvino() -> ModuleType:
    """``openvino``, imported without its model-conversion tools until they are used.

    ``import openvino`` also imports ``convert_model`` and with it a telemetry client,
    urllib and email (about a tenth of a second), which running an already converted model
    never needs. Blocking that one optional import during ``import openvino`` leaves the
    runtime whole; ``openvino.convert_model`` is then imported on first access.
    """
    loaded = sys.modules.get("openvino")
    if loaded is not None:
        return loaded
    blocked = "openvino.tools.ovc" not in sys.modules
    if blocked:
        sys.modules["openvino.tools.ovc"] = None  # type: ignore[assignment]
    try:
        import openvino as ov
    finally:
        if blocked and sys.modules.get("openvino.tools.ovc", False) is None:
            del sys.modules["openvino.tools.ovc"]
    if "convert_model" not in vars(ov):

        def __getattr__(name: str) -> Any:
            if name == "convert_model":
                from openvino.tools.ovc import convert_model

                ov.convert_model = convert_model
                return convert_model
            raise AttributeError(f"module 'openvino' has no attribute {name!r}")

        ov.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return ov


def converted_dir(name: str, key: str) -> Path:
    """The cache folder of one converted model (``name`` says which, ``key`` which weights)."""
    return cache_dir() / "openvino" / f"{name}-{key}"


def text_ir_dir(family: str, key: str) -> Path:
    """The cache folder of a family's text tower converted from the files with ``key``."""
    return converted_dir(f"{family}-text-encoder", key)


def compile_ir(xml: Path, precision: str, *, blob_cache: bool = True) -> Any:
    """An inference request for a converted model on the CPU (one request, latency hint).

    With ``blob_cache`` OpenVINO keeps the compiled model under the cache folder, which
    turns later compiles of the same model and settings into a load (several times faster).
    """
    ov = import_openvino()
    config = {"INFERENCE_PRECISION_HINT": _ov_precision(precision), "PERFORMANCE_HINT": "LATENCY"}
    if blob_cache:
        config["CACHE_DIR"] = str(cache_dir() / "openvino" / "compiled")
    return ov.Core().compile_model(str(xml), "CPU", config).create_infer_request()


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
    *,
    blob_cache: bool = False,
) -> Any:
    """Convert ``module()`` once (cached under ``name-key``) and compile it for the CPU.

    ``module`` is only called when no converted copy exists yet.
    """
    target = converted_dir(name, key)
    xml = target / "model.xml"
    if not xml.exists():
        import torch

        ov = import_openvino()
        module = module()
        log.info("Converting the %s for OpenVINO (once per model)...", name.replace("-", " "))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer deprecation chatter
            converted = ov.convert_model(module.eval(), example_input=example, input=shapes)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        ov.save_model(converted, tmp / "model.xml", compress_to_fp16=False)
        _publish(tmp, target)
    return compile_ir(xml, precision, blob_cache=blob_cache)


def _features(out: Any) -> Any:
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _tower(method: str, names: tuple[str, ...], model: Any) -> Any:
    """A module whose positional inputs are ``names``, returning ``model.<method>(...)``."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return _features(getattr(self.model, method)(**dict(zip(names, inputs, strict=True))))

    return Tower()


Features = Callable[[dict[str, np.ndarray]], np.ndarray]


def _runner(request: Any, names: tuple[str, ...], dtypes: dict[str, Any]) -> Features:
    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {
            i: np.ascontiguousarray(inputs[name], dtype=dtypes[name])
            for i, name in enumerate(names)
        }
        return np.asarray(request.infer(feeds)[0])

    return run


def compile_vision_tower(
    load_model: Callable[[], Any],
    key: str | None,
    family: Family,
    example: dict[str, np.ndarray],
    precision: str,
) -> Features:
    """A function mapping the image tower's inputs (see ``Family.image_inputs``) to features.

    The batch dimension is dynamic; every other dimension is the family's fixed input
    shape (SigLIP 2 pads every photo to its full patch budget). ``key`` identifies the
    model's files; without one the weights are loaded and digested.
    """
    import openvino as ov
    import torch

    names = tuple(example)
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in names)
    request = _compile_cached(
        f"{family.name}-image-encoder",
        key or _weights_key(load_model(), ("vision_model", "visual_projection")),
        lambda: _tower("get_image_features", names, load_model()),
        tensors,
        [ov.PartialShape([-1, *t.shape[1:]]) for t in tensors],
        precision,
    )
    return _runner(request, names, {n: example[n].dtype for n in names})


def compile_text_tower(
    load_model: Callable[[], Any], key: str | None, family: Family, precision: str
) -> Features:
    """A function mapping token arrays (``input_ids`` [+ ``attention_mask``]) to features."""
    import openvino as ov
    import torch

    names = family.text.input_names
    ids = torch.ones(2, 7, dtype=torch.int64)
    request = _compile_cached(
        f"{family.name}-text-encoder",
        key or _weights_key(load_model(), ("text_model", "text_projection")),
        lambda: _tower("get_text_features", names, load_model()),
        tuple(ids for _ in names),
        [ov.PartialShape([-1, -1]) for _ in names],
        precision,
        blob_cache=True,  # shared with text-only searches (see indexer.models.text)
    )
    return _runner(request, names, dict.fromkeys(names, np.int64))


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
            YOLO(str(tmp / f"{stem}.pt")).export(
                format="openvino", dynamic=True, half=False, verbose=False
            )
        (tmp / f"{stem}.pt").unlink()
        _publish(tmp, target)
    return str(exported)


class OpenVinoClipSession:
    """A dual encoder's image and text towers compiled for the CPU by OpenVINO (converted once)."""

    name = "openvino"

    def __init__(self, vision: Features, text: Features) -> None:
        self._vision = vision
        self._text = text

    @classmethod
    def load(
        cls,
        load_model: Callable[[], Any],
        key: str | None,
        family: Family,
        example: dict[str, np.ndarray],
        precision: str,
    ) -> OpenVinoClipSession:
        """Compile both towers; ``load_model`` is only called when a conversion is needed.

        ``example`` is a batch of the image tower's inputs, used to trace it.
        """
        return cls(
            compile_vision_tower(load_model, key, family, example, precision),
            compile_text_tower(load_model, key, family, precision),
        )

    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._vision(inputs)

    def text_features(self, tokens: dict[str, np.ndarray]) -> np.ndarray:
        return self._text(tokens)
