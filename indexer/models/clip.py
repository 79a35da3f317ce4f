"""CLIP embeddings for photos, crops, text and query images.

:class:`ClipEmbedder` loads a Hugging Face ``CLIPModel`` from a hub id or a local folder,
preprocesses images itself (one PIL resize + centre crop per image, then one normalise on
the whole batch, the same maths as ``CLIPImageProcessor``) and returns L2-normalised
float32 vectors. Text queries use prompt ensembling: several phrasings are embedded and
averaged, which makes short queries like "a flowerpot" more robust. The encoders run in
one inference session (:class:`TorchClipSession` or the OpenVINO one), chosen once.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..errors import NO_INTERNET_HINT, ModelLoadError, QueryError, first_line
from ..settings import ENV_CLIP_MODEL, choose_backend, choose_precision, resolve_clip_model
from .openvino import OpenVinoClipSession
from .source import ModelSource, canonical_model_id, find_source

log = logging.getLogger("objsearch")

# Prompt ensembling: a query is embedded in these phrasings and the vectors averaged. Four
# phrasings keep most of the robustness of longer lists while text encoding stays within
# the query-latency budget (each phrasing is one more pass of the text encoder).
PROMPT_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of {}.",
    "a cropped photo of {}.",
    "a close-up photo of {}.",
)

# A fixed probe, embedded at index time and again at search time: equal vectors mean the
# same weights, whatever path or hub id the model was loaded from.
PROBE_TEXT = "a photo of a cat sitting on a red sofa"


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def normalise_query(text: str) -> str:
    """A text query with runs of whitespace collapsed; refuses an empty one."""
    query = " ".join(text.split())
    if not query:
        raise QueryError("The text query is empty.")
    return query


class ClipSession(Protocol):
    """One way of running CLIP's two encoders: unnormalised projected features."""

    name: str

    def image_features(self, pixels: np.ndarray) -> np.ndarray: ...

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


class TorchClipSession:
    """CLIP run eagerly by PyTorch (fp16 weights on CUDA, bf16 autocast where asked)."""

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

    def _run(self, fn: Any, **inputs: Any) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), self._autocast():
            out = fn(**inputs)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return feats.float().cpu().numpy()

    def image_features(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        half = self.precision == "fp16" and self.device.startswith("cuda")
        dtype = torch.float16 if half else torch.float32
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, dtype=dtype)
        return self._run(self.model.get_image_features, pixel_values=tensor)

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        return self._run(
            self.model.get_text_features,
            input_ids=torch.from_numpy(np.ascontiguousarray(input_ids)).to(self.device),
            attention_mask=torch.from_numpy(np.ascontiguousarray(attention_mask)).to(self.device),
        )


def clip_load_error(model_id: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load CLIP model {model_id!r}: {reason}\n"
        "Supply it either as a Hugging Face hub id (downloaded once on a machine with "
        "internet access, e.g. openai/clip-vit-base-patch32) or as a local folder saved "
        f"with save_pretrained: --clip-model PATH or {ENV_CLIP_MODEL}=PATH. {NO_INTERNET_HINT}"
    )


def find_clip_source(model_id: str | None) -> ModelSource:
    """Where the CLIP model's files are, without reading its weights; else ModelLoadError."""
    name = canonical_model_id(resolve_clip_model(model_id))
    try:
        return find_source(os.path.expanduser(name))
    except Exception as exc:
        raise clip_load_error(name, first_line(exc)) from None


class ClipEmbedder:
    """Embeds images and text into one L2-normalised float32 space with a CLIP model."""

    def __init__(
        self,
        model_id: str | None = None,
        device: str = "cpu",
        *,
        precision: str | None = "fp32",
        batch_size: int = 64,
        backend: str | None = None,
    ) -> None:
        self.model_id = canonical_model_id(resolve_clip_model(model_id))
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self._source: ModelSource = find_clip_source(self.model_id)
        try:
            self.config = self._source.config()
            image_processor = self._source.image_processor()
            self.tokenizer = self._source.tokenizer()
        except Exception as exc:
            raise clip_load_error(self.model_id, first_line(exc)) from None
        self.precision = choose_precision(precision, device)
        self.dim = int(self.config.projection_dim)
        self._configure_preprocess(image_processor)
        self.session = self._open_session(choose_backend(backend, device))
        self._text_cache: OrderedDict[tuple[str, bool], np.ndarray] = OrderedDict()

    def _open_session(self, backend: str) -> ClipSession:
        """The session for ``backend``; PyTorch when an OpenVINO conversion fails."""
        if backend == "openvino":
            try:
                return OpenVinoClipSession.load(
                    self._load_weights, self._source.files_key(), self.crop[0], self.precision
                )
            except Exception as exc:  # a conversion problem must not stop the run
                log.warning(
                    "OpenVINO conversion of CLIP failed (%s); using PyTorch.", first_line(exc)
                )
        # Loaded now: a broken weights file should fail here, not mid-run.
        return TorchClipSession.load(self._load_weights, self.device, self.precision)

    def _load_weights(self) -> Any:
        try:
            return self._source.model()
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load CLIP weights from {self.model_id!r}: {first_line(exc)}"
            ) from None

    @property
    def backend(self) -> str:
        """The backend that runs the encoders: ``torch`` or ``openvino``."""
        return self.session.name

    def _configure_preprocess(self, proc: Any) -> None:
        size = proc.size or {}
        crop = proc.crop_size or {}
        self.resize_to = int(size.get("shortest_edge") or size.get("height") or 224)
        self.crop = (
            int(crop.get("height", self.resize_to)),
            int(crop.get("width", self.resize_to)),
        )
        self.do_center_crop = bool(getattr(proc, "do_center_crop", True))
        self.mean = np.asarray(proc.image_mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(proc.image_std, dtype=np.float32).reshape(1, 3, 1, 1)
        resample = getattr(proc, "resample", Image.Resampling.BICUBIC)
        self.resample = (
            Image.Resampling(int(resample)) if resample is not None else Image.Resampling.BICUBIC
        )

    # -- preprocessing -------------------------------------------------------------------
    def _prepare_one(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        short = self.resize_to
        if w <= h:
            new_w, new_h = short, max(1, int(short * h / w))
        else:
            new_w, new_h = max(1, int(short * w / h)), short
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), self.resample, reducing_gap=3.0)
        ch, cw = self.crop
        if self.do_center_crop:
            left = int(round((new_w - cw) / 2.0))
            top = int(round((new_h - ch) / 2.0))
            arr = np.asarray(image)
            if left < 0 or top < 0:  # smaller than the crop: pad with zeros, as CLIP does
                padded = np.zeros((max(ch, new_h), max(cw, new_w), 3), np.uint8)
                oy, ox = max(0, -top), max(0, -left)
                padded[oy : oy + new_h, ox : ox + new_w] = arr
                arr, top, left = padded, max(0, top), max(0, left)
            arr = arr[top : top + ch, left : left + cw]
        else:
            arr = np.asarray(image.resize((cw, ch), self.resample))
        return arr

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 3, H, W) float32 pixel values normalised with the model's mean and std."""
        batch = np.stack([self._prepare_one(im) for im in images]).astype(np.float32)
        batch = batch.transpose(0, 3, 1, 2) / 255.0
        return (batch - self.mean) / self.std

    # -- embedding -----------------------------------------------------------------------
    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed already-preprocessed pixel values (N, 3, H, W)."""
        return unit_rows(self.session.image_features(pixels))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dim) normalised vectors, computed in batches of ``batch_size``."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            self.embed_pixels(self.preprocess(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(parts)

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return self.embed_images([image])[0]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) normalised vectors for literal texts (no prompt ensembling)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        max_len = int(getattr(self.tokenizer, "model_max_length", 77) or 77)
        max_len = min(max_len, int(self.config.text_config.max_position_embeddings))
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="np"
        )
        ids = np.asarray(tokens["input_ids"], dtype=np.int64)
        mask = np.asarray(tokens["attention_mask"], dtype=np.int64)
        return unit_rows(self.session.text_features(ids, mask))

    def embed_text(self, query: str, *, ensemble: bool = True) -> np.ndarray:
        """One normalised vector for a text query, averaged over prompt templates."""
        query = normalise_query(query)
        key = (query, ensemble)
        cached = self._text_cache.get(key)
        if cached is None:
            prompts = [t.format(query) for t in PROMPT_TEMPLATES] if ensemble else [query]
            cached = self.embed_texts(prompts).mean(axis=0)
            cached /= max(float(np.linalg.norm(cached)), 1e-12)
            cached.setflags(write=False)
            self._text_cache[key] = cached
            if len(self._text_cache) > 512:
                self._text_cache.popitem(last=False)
        else:
            self._text_cache.move_to_end(key)
        return cached

    def fingerprint(self) -> np.ndarray:
        """A vector that identifies these weights (see :data:`PROBE_TEXT`)."""
        return self.embed_texts([PROBE_TEXT])[0]
