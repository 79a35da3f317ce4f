"""The embedding model run from its conversion cache alone: no torch, no transformers.

The first run that loads a model with :class:`~indexer.models.clip.ClipEmbedder` on the
CPU converts both towers for OpenVINO and records, beside the text tower, its tokenizer
and a :class:`~indexer.models.text.QueryRecipe`. From then on everything an index run
needs is on disk: the image tower's IR (and its int8 copy), the text tower's IR and
tokenizer, and the image preprocessing settings in the model folder's JSON. Importing
torch and transformers to rebuild what is already there costs seconds and hundreds of MiB
per run, so :func:`load_embedder` answers from the cache when it can and loads the full
model only when it must (first run, PyTorch backend, a GPU, a damaged cache entry).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import first_line
from ..settings import QUANTIZED_PRECISIONS, choose_precision, resolve_clip_model
from .images import ImageQueries, example_images
from .openclip_files import MODEL_TYPE as OPEN_CLIP
from .openclip_files import image_settings, is_open_clip
from .openvino import Features, compile_ir, image_ir_dir, runner
from .source import ModelSource, canonical_model_id
from .text import CachedModel, OpenVinoTextEncoder, compile_text_encoder, find_cached

log = logging.getLogger("objsearch")


class ConvertedEmbedder(OpenVinoTextEncoder, ImageQueries):
    """Both towers of a cached conversion, compiled for the CPU (see the module docstring).

    Offers what indexing and searching use of :class:`~indexer.models.clip.ClipEmbedder`:
    the image side (``preprocess``, ``embed_inputs``, ``embed_images``), the text side and
    the probe, and the same ``model_id``, ``family``, ``dim``, ``precision`` and
    ``calibration_key``.
    """

    device = "cpu"

    def __init__(
        self,
        text: OpenVinoTextEncoder,
        vision: Features,
        pixels: Any,
        precision: str,
        batch_size: int,
        calibration_key: str | None,
    ) -> None:
        super().__init__(
            text.model_id,
            text.family,
            text.recipe,
            text._tokenizer,
            text._request or text._compile,
            text._probe_file,
        )
        self._vision = vision
        self.pixels = pixels
        self.precision = precision
        self.batch_size = max(1, int(batch_size))
        self.calibration_key = calibration_key

    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._vision(inputs)


def _image_xml(cached: CachedModel, precision: str, calibration_key: str | None) -> Path | None:
    """The image tower to compile: the converted one, or its int8 copy for ``int8``."""
    xml = image_ir_dir(cached.family.name, cached.key) / "model.xml"
    if not xml.is_file():
        return None
    if precision not in QUANTIZED_PRECISIONS:
        return xml
    from .quantize import calibration_key as key_of
    from .quantize import default_calibration_photos, quantized_dir

    if calibration_key is None:
        photos = default_calibration_photos()
        if not photos:
            return None  # the full embedder says what is missing
        calibration_key = key_of(photos)
    quantized = quantized_dir(xml, calibration_key) / "model.xml"
    return quantized if quantized.is_file() else None


def load_converted_embedder(
    model_id: str | None,
    device: str | None,
    *,
    precision: str | None,
    backend: str | None,
    batch_size: int,
    calibration_key: str | None = None,
) -> ConvertedEmbedder | None:
    """The embedder from the conversion cache, or None when the full model is needed.

    Resolves its arguments as :class:`~indexer.models.clip.ClipEmbedder` does and never
    raises for a model or setting problem: the full embedder reports those.
    """
    try:
        cached = find_cached(model_id, device, backend)
        if cached is None:
            return None
        chosen = choose_precision(precision, "cpu")
        xml = _image_xml(cached, chosen, calibration_key)
        settings = (
            image_settings(cached.folder)
            if cached.family.name == OPEN_CLIP
            else ModelSource(cached.folder, {}).json_image_settings()
        )
        if xml is None or settings is None:
            return None
        pixels = cached.family.image_inputs(settings)
        example = pixels(example_images())
        names = tuple(example)
        vision = runner(compile_ir(xml, chosen), names, {n: example[n].dtype for n in names})
        text = compile_text_encoder(cached, chosen, lazy=True)
    except Exception as exc:  # a damaged cache entry, an IR OpenVINO rejects, a bad setting
        log.debug("Converted embedder unavailable for %s: %s", model_id, first_line(exc))
        return None
    if chosen in QUANTIZED_PRECISIONS:
        from .quantize import quantized_key

        key: str | None = quantized_key(xml)
    else:
        key = None
    return ConvertedEmbedder(text, vision, pixels, chosen, batch_size, key)


def load_embedder(
    model_id: str | None,
    device: str,
    *,
    precision: str | None = None,
    backend: str | None = None,
    batch_size: int = 64,
    calibration: Sequence[str] | None = None,
    calibration_key: str | None = None,
) -> Any:
    """The embedding model for a run: from the conversion cache when it holds everything,
    else :class:`~indexer.models.clip.ClipEmbedder`, or for an open_clip checkpoint
    :class:`~indexer.models.openclip.OpenClipEmbedder` (which convert it for next time).

    ``calibration`` (explicit int8 calibration photos) always takes the full path, which
    keys the quantized tower by those photos.
    """
    if not calibration:
        converted = load_converted_embedder(
            model_id,
            device,
            precision=precision,
            backend=backend,
            batch_size=batch_size,
            calibration_key=calibration_key,
        )
        if converted is not None:
            return converted
    from .clip import ClipEmbedder

    full = ClipEmbedder
    if is_open_clip(canonical_model_id(resolve_clip_model(model_id))):
        from .openclip import OpenClipEmbedder

        full = OpenClipEmbedder
    return full(
        model_id,
        device,
        precision=precision,
        batch_size=batch_size,
        backend=backend,
        calibration=calibration,
        calibration_key=calibration_key,
    )
