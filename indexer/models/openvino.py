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
from .mapped_pages import release_mapped_pages

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


def image_ir_dir(family: str, key: str) -> Path:
    """The cache folder of a family's image tower converted from the files with ``key``."""
    return converted_dir(f"{family}-image-encoder", key)


def publish(tmp: Path, final: Path) -> None:
    """Move a finished conversion into place; another process may have won the race."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _ov_precision(precision: str) -> str:
    """The float precision OpenVINO runs in; an int8 model's remaining float layers run in
    bf16 where the CPU has bf16 units."""
    if precision == "int8":
        from ..settings import cpu_has_fast_bf16

        return "bf16" if cpu_has_fast_bf16() else "f32"
    return "bf16" if precision == "bf16" else "f32"


def compile_ir(xml: Path, precision: str | None) -> Any:
    """An infer request for the IR at ``xml``, compiled for the CPU.

    ``precision`` None leaves the float precision to OpenVINO's default for this CPU (bf16
    where it has bf16 units, else fp32). OpenVINO keeps the compiled blob under the cache
    folder (``CACHE_DIR``), so a later run imports it instead of compiling the graph again.
    """
    ov = import_openvino()
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "CACHE_DIR": str(cache_dir() / "openvino" / "compiled"),
    }
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = _ov_precision(precision)
    return CompiledRequest(ov.Core().compile_model(str(xml), "CPU", config).create_infer_request())


class CompiledRequest:
    """A compiled model's infer request that, after its first inference, gives back the
    resident pages of the mapped model files, which OpenVINO has packed into its own memory
    by then (about 170 MB for the ViT-B/32 image tower; see :mod:`.mapped_pages`)."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.fresh = True
        """No inference has run yet (see :func:`infer_rows`)."""

    def infer(self, feeds: dict[int, np.ndarray]) -> Any:
        out = self._request.infer(feeds)
        if self.fresh:
            self.fresh = False
            release_mapped_pages(cache_dir() / "openvino")
        return out


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


def _convert_cached(target: Path, convert: Callable[[], Any]) -> Path:
    """The IR ``convert()`` returns, converted once and cached in the folder ``target``.

    ``convert`` (which loads the PyTorch model) is only called when no converted copy
    exists yet, so a cached model needs neither torch nor the weights. The weights are
    stored in fp16: half the disk and half the memory while the graph is read, and the
    vectors agree with fp32 weights to a cosine above 0.9999 (the conversion tests).
    """
    ov = import_openvino()
    xml = target / "model.xml"
    if not xml.exists():
        what = target.name.rsplit("-", 1)[0].replace("-", " ")
        log.info("Converting the %s for OpenVINO (once per model)...", what)
        converted = convert()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        ov.save_model(converted, tmp / "model.xml", compress_to_fp16=True)
        publish(tmp, target)
    return xml


def _trace(module: Any, example: tuple[Any, ...], shapes: list[Any]) -> Any:
    """``module`` traced into an OpenVINO model with inputs of ``shapes``."""
    import openvino as ov
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer deprecation chatter
        return ov.convert_model(module.eval(), example_input=example, input=shapes)


def _compile_cached(
    target: Path,
    module: Callable[[], Any],
    example: tuple[Any, ...],
    shapes: list[Any],
    precision: str,
) -> Any:
    """Convert ``module()`` once (see :func:`_convert_cached`) and compile it for the CPU."""
    xml = _convert_cached(target, lambda: _trace(module(), example, shapes))
    return compile_ir(xml, precision)


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
FIRST_ROWS = 2  # rows of a model's first inference (see infer_rows)


def infer_rows(request: CompiledRequest, feeds: dict[int, np.ndarray]) -> np.ndarray:
    """The first output of ``request`` for a batch of inputs, one row per batch item.

    A batch of one runs as two copies of itself: OpenVINO's CPU plugin packs the weights
    of its matrix products once more for a single row, about 300 MiB more for a ViT-B/32
    image tower, and a run that embeds one crop or one probe text would keep both copies.
    A model's first inference runs on its first ``FIRST_ROWS`` rows alone: it packs the
    weights while their mapped copy is still resident (see :class:`CompiledRequest`), and
    on a few rows that peak holds little working memory beside the two copies.
    """
    rows = next(iter(feeds.values())).shape[0]
    if rows == 1:
        doubled = {i: np.concatenate([v, v]) for i, v in feeds.items()}
        return np.asarray(request.infer(doubled)[0])[:1]
    if request.fresh and rows >= 2 * FIRST_ROWS:
        parts = [{i: v[:FIRST_ROWS] for i, v in feeds.items()}]
        parts.append({i: v[FIRST_ROWS:] for i, v in feeds.items()})
        return np.concatenate([np.asarray(request.infer(part)[0]) for part in parts])
    return np.asarray(request.infer(feeds)[0])


def runner(request: CompiledRequest, names: tuple[str, ...], dtypes: dict[str, Any]) -> Features:
    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {
            i: np.ascontiguousarray(inputs[name], dtype=dtypes[name])
            for i, name in enumerate(names)
        }
        return infer_rows(request, feeds)

    return run


def compile_vision_tower(
    load_model: Callable[[], Any],
    key: str | None,
    family: Family,
    example: dict[str, np.ndarray],
    precision: str,
    quantize: Callable[[Path, tuple[str, ...]], Path] | None = None,
) -> Features:
    """A function mapping the image tower's inputs (see ``Family.image_inputs``) to features.

    The batch dimension is dynamic; every other dimension is the family's fixed input
    shape (SigLIP 2 pads every photo to its full patch budget). ``key`` identifies the
    model's files; without one the weights are loaded and digested. ``quantize`` maps the
    converted IR and its input names to an int8 copy (see :mod:`.quantize`).
    """
    names = tuple(example)

    def convert() -> Any:
        import openvino as ov
        import torch

        tensors = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in names)
        shapes = [ov.PartialShape([-1, *t.shape[1:]]) for t in tensors]
        return _trace(_tower("get_image_features", names, load_model()), tensors, shapes)

    key = key or _weights_key(load_model(), ("vision_model", "visual_projection"))
    xml = _convert_cached(image_ir_dir(family.name, key), convert)
    if quantize is not None:
        xml = quantize(xml, names)
    return runner(compile_ir(xml, precision), names, {n: example[n].dtype for n in names})


def compile_text_tower(
    load_model: Callable[[], Any], key: str | None, family: Family, precision: str
) -> Features:
    """A function mapping token arrays (``input_ids`` [+ ``attention_mask``]) to features."""
    import openvino as ov
    import torch

    names = family.text.input_names
    ids = torch.ones(2, family.text.trace_length, dtype=torch.int64)
    request = _compile_cached(
        text_ir_dir(
            family.name, key or _weights_key(load_model(), ("text_model", "text_projection"))
        ),
        lambda: _tower("get_text_features", names, load_model()),
        tuple(ids for _ in names),
        [ov.PartialShape([-1, -1]) for _ in names],
        precision,
    )
    return runner(request, names, dict.fromkeys(names, np.int64))


def yolo_export_dir(weights: str) -> Path:
    """The folder of the OpenVINO export of ``weights`` (a local ``.pt``), keyed by its bytes."""
    with open(weights, "rb") as fh:
        key = hashlib.blake2b(fh.read(), digest_size=12).hexdigest()
    stem = Path(weights).stem
    return cache_dir() / "openvino" / f"yolo-{key}" / f"{stem}_openvino_model"


def yolo_openvino_weights(weights: str) -> str:
    """An ultralytics OpenVINO export of ``weights`` (a local ``.pt``), converted once.

    The export's recipe (see :mod:`.yolo_openvino`) is recorded beside it, so later runs
    can run the graph without ultralytics.
    """
    from .yolo_openvino import record_recipe

    exported = yolo_export_dir(weights)
    stem = Path(weights).stem
    target = exported.parent
    if not (exported / f"{stem}.xml").exists():
        from ultralytics import YOLO

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
        record_recipe(tmp / exported.name)
        publish(tmp, target)
    else:
        record_recipe(exported)  # an export from before recipes were recorded
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
        quantize: Callable[[Path, tuple[str, ...]], Path] | None = None,
    ) -> OpenVinoClipSession:
        """Compile both towers; ``load_model`` is only called when a conversion is needed.

        ``example`` is a batch of the image tower's inputs, used to trace it; ``quantize``
        (for int8) turns the image tower's IR into a quantized one. The text tower is never
        quantized: queries are few and short.
        """
        return cls(
            compile_vision_tower(load_model, key, family, example, precision, quantize),
            compile_text_tower(load_model, key, family, precision),
        )

    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._vision(inputs)

    def text_features(self, tokens: dict[str, np.ndarray]) -> np.ndarray:
        return self._text(tokens)
