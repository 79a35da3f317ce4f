"""Dual-encoder embeddings for photos, crops, text and query images.

:class:`ClipEmbedder` loads any supported Hugging Face dual encoder (CLIP, SigLIP, SigLIP 2,
AltCLIP: see :mod:`indexer.models.families`) from a hub id or a local folder, preprocesses
images itself the way its family was trained (one PIL resize per image, one normalise per
batch: several times faster than the reference processors on crops) and returns
L2-normalised float32 vectors. Text queries use prompt ensembling where the family
benefits: several phrasings are embedded and averaged, which makes short queries like
"a flowerpot" more robust. The towers run in one inference session
(:class:`TorchClipSession` or the OpenVINO one), chosen once.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, Protocol

import numpy as np

from ..errors import NO_INTERNET_HINT, ModelLoadError, ObjsearchError, first_line
from ..settings import (
    ENV_CLIP_MODEL,
    QUANTIZED_PRECISIONS,
    check_quantized_backend,
    choose_backend,
    choose_precision,
    resolve_clip_model,
)
from .families import Family, family_of
from .images import ImageQueries, example_images
from .lifecycle import serialised
from .openvino import OpenVinoClipSession, text_ir_dir
from .source import ModelSource, canonical_model_id, find_source
from .text import (
    PROBE_TEXT,
    QueryRecipe,
    TextQueries,
    normalise_query,
    recipe_recorded,
    save_recipe,
    unit_rows,
)

log = logging.getLogger("objsearch")

__all__ = ["PROBE_TEXT", "ClipEmbedder", "normalise_query", "unit_rows"]


class ClipSession(Protocol):
    """One way of running a dual encoder's two towers: unnormalised projected features.

    Inputs are named arrays: the image tower's from ``Family.image_inputs``, the text
    tower's from ``TextStyle.input_names``.
    """

    name: str

    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...

    def text_features(self, tokens: dict[str, np.ndarray]) -> np.ndarray: ...


class TorchClipSession:
    """A dual encoder run eagerly by PyTorch (fp16 weights on CUDA, bf16 autocast where asked)."""

    name = "torch"

    def __init__(self, model: Any, device: str, precision: str) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.device = device
        self.precision = precision

    @classmethod
    def load(cls, load_model: Callable[[], Any], device: str, precision: str) -> TorchClipSession:
        model = load_model().eval().to(device)
        if precision == "fp16" and device.startswith("cuda"):
            model = model.half()
        return cls(model, device, precision)

    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return self._torch.autocast(self.device.split(":")[0], dtype=self._torch.bfloat16)
        return nullcontext()

    def _run(self, fn: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        half = self.precision == "fp16" and self.device.startswith("cuda")
        tensors = {}
        for name, value in inputs.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value)).to(self.device)
            if tensor.is_floating_point():
                tensor = tensor.to(torch.float16 if half else torch.float32)
            tensors[name] = tensor
        with torch.inference_mode(), self._autocast():
            out = fn(**tensors)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return feats.float().cpu().numpy()

    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(self.model.get_image_features, inputs)

    def pixel_features(self, pixels: Any) -> np.ndarray:
        """Features of a normalised (N, 3, H, W) tensor already on this session's device."""
        torch = self._torch
        half = self.precision == "fp16" and self.device.startswith("cuda")
        with torch.inference_mode(), self._autocast():
            out = self.model.get_image_features(
                pixel_values=pixels.to(torch.float16 if half else torch.float32)
            )
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return feats.float().cpu().numpy()

    def text_features(self, tokens: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(self.model.get_text_features, tokens)


def clip_load_error(model_id: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load CLIP model {model_id!r}: {reason}\n"
        "Supply it either as a Hugging Face hub id (downloaded once on a machine with "
        "internet access, e.g. openai/clip-vit-base-patch32) or as a local folder saved "
        f"with save_pretrained: --clip-model PATH or {ENV_CLIP_MODEL}=PATH; an open_clip model "
        "as hf-hub:org/name or a folder holding open_clip_config.json and its weights. "
        f"{NO_INTERNET_HINT}"
    )


def find_clip_source(model_id: str | None) -> ModelSource:
    """Where the CLIP model's files are, without reading its weights; else ModelLoadError."""
    name = canonical_model_id(resolve_clip_model(model_id))
    try:
        return find_source(os.path.expanduser(name))
    except Exception as exc:
        raise clip_load_error(name, first_line(exc)) from None


class ClipEmbedder(TextQueries, ImageQueries):
    """Embeds images and text into one L2-normalised float32 space with a dual encoder.

    The family (CLIP, SigLIP, SigLIP 2, AltCLIP) is read from the checkpoint's config; its
    record in :data:`indexer.models.families.FAMILIES` decides preprocessing, text padding
    and prompt templates. ``calibration`` names the photos that calibrate ``int8``
    (default: the checkout's ``data/`` photos; see :mod:`indexer.models.quantize`);
    ``calibration_key`` names a quantized tower already cached (as an index records it),
    used without the photos. After loading, ``calibration_key`` is the one in use.
    """

    def __init__(
        self,
        model_id: str | None = None,
        device: str = "cpu",
        *,
        precision: str | None = "fp32",
        batch_size: int = 64,
        backend: str | None = None,
        calibration: Sequence[str] | None = None,
        calibration_key: str | None = None,
    ) -> None:
        self.model_id = canonical_model_id(resolve_clip_model(model_id))
        self.device = device
        self.batch_size = max(1, int(batch_size))
        image_settings = self._load_files()
        self.precision = choose_precision(precision, device)
        backend = choose_backend(backend, device)
        self.calibration = list(calibration or ())
        self.calibration_key = calibration_key
        if self.precision in QUANTIZED_PRECISIONS:
            from .quantize import default_calibration_photos, require_nncf

            check_quantized_backend(self.precision, backend)
            if calibration_key is None:
                require_nncf()
            self.calibration = self.calibration or default_calibration_photos()
        self.dim = self.family.embed_dim(self.config)
        self.pixels = self.family.image_inputs(image_settings)
        self.templates = self.family.templates
        self._text_length = self._max_text_length()
        self.session = self._open_session(backend)
        self._text_cache: OrderedDict[tuple[str, bool], np.ndarray] = OrderedDict()

    def _load_files(self) -> Any:
        """Find the model and read its config, family and tokenizer (``config``,
        ``family``, ``tokenizer``); returns the image preprocessing settings."""
        self._source: ModelSource = find_clip_source(self.model_id)
        try:
            self.config = self._source.config()
        except Exception as exc:
            raise clip_load_error(self.model_id, first_line(exc)) from None
        self.family: Family = family_of(self.config, self.model_id)
        try:
            image_processor = self._source.image_processor()
            self.tokenizer = self._source.tokenizer()
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load the tokenizer or image processor of {self.model_id!r} "
                f"({self.family.title}): {first_line(exc)}"
            ) from None
        return image_processor

    def _files_key(self) -> str | None:
        """The key of the model's files, which names its converted copies (see source.py)."""
        return self._source.files_key()

    def _open_session(self, backend: str) -> ClipSession:
        """The session for ``backend``; PyTorch when an OpenVINO conversion fails."""
        if backend == "openvino":
            quantize = None
            if self.precision in QUANTIZED_PRECISIONS:
                quantize = self._quantize
            try:
                key = self._files_key()
                session = OpenVinoClipSession.load(
                    self._load_weights,
                    key,
                    self.family,
                    self.preprocess(example_images()),
                    self.precision,
                    quantize,
                )
                if key is not None:
                    try:
                        self._record_recipe(key)
                    except Exception as exc:  # only text searches' start-up depends on it
                        log.debug("No text recipe recorded: %s", first_line(exc))
                return session
            except ObjsearchError:
                raise
            except Exception as exc:  # a conversion problem must not stop the run
                if quantize is not None:  # PyTorch cannot run int8: say why instead
                    raise ModelLoadError(
                        f"Could not quantize {self.model_id!r} to int8: {first_line(exc)}"
                    ) from None
                log.warning(
                    "OpenVINO conversion of %s failed (%s); using PyTorch.",
                    self.family.title,
                    first_line(exc),
                )
        # Loaded now: a broken weights file should fail here, not mid-run.
        return TorchClipSession.load(self._load_weights, self.device, self.precision)

    def _quantize(self, xml: Any, names: tuple[str, ...]) -> Any:
        from .quantize import quantized_key, quantized_tower

        quantized = quantized_tower(
            xml, names, self.preprocess, self.calibration, self.calibration_key
        )
        self.calibration_key = quantized_key(quantized)
        return quantized

    def _record_recipe(self, key: str) -> None:
        """Leave what a torch-free text search needs beside the text tower's conversion."""
        folder = text_ir_dir(self.family.name, key)
        backend_tokenizer = getattr(self.tokenizer, "backend_tokenizer", None)
        pad_id = getattr(self.tokenizer, "pad_token_id", None)
        if backend_tokenizer is None or pad_id is None or recipe_recorded(folder):
            return  # e.g. a SentencePiece-only tokenizer: text searches load the full model
        recipe = QueryRecipe(
            family=self.family.name,
            dim=self.dim,
            max_length=self._text_length,
            padding=self.family.text.padding,
            padding_side=self.family.text.padding_side or self.tokenizer.padding_side,
            truncation_side=self.tokenizer.truncation_side,
            pad_id=int(pad_id),
            pad_token=str(self.tokenizer.pad_token),
            pad_type_id=int(getattr(self.tokenizer, "pad_token_type_id", 0) or 0),
        )
        save_recipe(folder, recipe, backend_tokenizer.to_str())

    def _load_weights(self) -> Any:
        try:
            return self._source.model(self.family)
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load the weights of {self.model_id!r}: {first_line(exc)}"
            ) from None

    @property
    def backend(self) -> str:
        """The backend that runs the encoders: ``torch`` or ``openvino``."""
        return self.session.name

    def _max_text_length(self) -> int:
        limit = int(self.config.text_config.max_position_embeddings)
        # Padded-to-max families must fill exactly the positions they were trained on.
        if self.family.text.padding == "max_length":
            return limit
        return min(limit, int(getattr(self.tokenizer, "model_max_length", limit) or limit))

    # -- preprocessing -------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The text tower's inputs, padded the way the family was trained."""
        style = self.family.text
        if style.padding_side:
            self.tokenizer.padding_side = style.padding_side
        tokens = self.tokenizer(
            list(texts),
            padding=style.padding,
            truncation=True,
            max_length=self._text_length,
            return_tensors="np",
        )
        return {name: np.asarray(tokens[name], dtype=np.int64) for name in style.input_names}

    # -- embedding -----------------------------------------------------------------------
    def image_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.image_features(inputs)

    @serialised
    def embed_pixels(self, pixels: Any) -> np.ndarray:
        """(N, dim) normalised vectors of a normalised pixel tensor on the PyTorch session's
        device (see :mod:`indexer.indexing.device_regions`), in batches of ``batch_size``."""
        if not isinstance(self.session, TorchClipSession):
            raise TypeError("embed_pixels needs the PyTorch backend")
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            unit_rows(self.session.pixel_features(pixels[i : i + self.batch_size]))
            for i in range(0, len(pixels), self.batch_size)
        ]
        return np.concatenate(parts)

    @serialised
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) normalised vectors for literal texts (no prompt ensembling)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return unit_rows(self.session.text_features(self.tokenize(texts)))
