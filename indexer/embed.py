"""CLIP embeddings for photos, crops, text and query images.

:class:`ClipEmbedder` loads a Hugging Face ``CLIPModel`` from a hub id or a local folder,
preprocesses images itself (one PIL resize + centre crop per image, then one normalise on
the whole batch, the same maths as ``CLIPImageProcessor``) and returns L2-normalised
float32 vectors. Text queries use prompt ensembling: several phrasings are embedded and
averaged, which makes short queries like "a flowerpot" more robust.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .accel import choose_backend, compile_clip_text, compile_clip_vision
from .config import DEFAULT_CLIP_MODEL, ENV_CLIP_MODEL, ENV_PRECISION, PRECISIONS, resolve
from .errors import ModelLoadError, ObjsearchError, first_line

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


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Cheap DNS check so an offline machine fails in milliseconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(old)


@dataclass
class _Source:
    """Where a CLIP model's files come from, and how to load its parts from there."""

    model_id: str
    kwargs: dict[str, Any]

    def config(self) -> Any:
        from transformers import CLIPConfig

        return CLIPConfig.from_pretrained(self.model_id, **self.kwargs)

    def image_processor(self) -> Any:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor.from_pretrained(self.model_id, **self.kwargs)

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_id, **self.kwargs)

    def model(self) -> Any:
        from transformers import CLIPModel

        return CLIPModel.from_pretrained(self.model_id, **self.kwargs)

    def files_key(self) -> str | None:
        """A digest of the model folder's files (names, sizes, mtimes), or None if unknown.

        It names converted (OpenVINO) copies of the model, so a later run can use them
        without loading the PyTorch weights at all.
        """
        from transformers.utils import cached_file

        try:
            config_path = cached_file(self.model_id, "config.json", **self.kwargs)
        except Exception:
            return None
        if not config_path:
            return None
        folder = os.path.dirname(config_path)
        digest = hashlib.blake2b(digest_size=12)
        for name in sorted(os.listdir(folder)):
            if name.endswith((".json", ".safetensors", ".bin", ".txt")):
                st = os.stat(os.path.join(folder, name))
                digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
        return digest.hexdigest()


def _find_source(model_id: str) -> _Source:
    """A local folder, the Hugging Face cache, or (when reachable) the hub, in that order."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and weight-loading bars are noise here
    hf_logging.disable_progress_bar()
    if os.path.isdir(model_id):
        return _Source(model_id, {})
    if os.path.exists(model_id):
        raise OSError(
            f"{model_id} is a file; a local CLIP model is a folder saved with save_pretrained"
        )
    cached = _Source(model_id, {"local_files_only": True})
    try:
        cached.config()
        return cached
    except Exception:
        if looks_like_path(model_id) or not _hub_reachable():
            raise OSError(
                "it is not a local folder, not in the Hugging Face cache, and the hub cannot "
                "be reached"
            ) from None
    return _Source(model_id, {})


def looks_like_path(model_id: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a path."""
    return (
        model_id.startswith((".", "/", "~"))
        or model_id.count("/") > 1
        or os.sep + os.sep in model_id
    )


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(precision: str | None, device: str) -> str:
    """``auto`` -> fp16 on CUDA, bf16 on CPUs with bf16 units, else fp32."""
    value = (resolve(precision, ENV_PRECISION, "auto") or "auto").lower()
    if value not in PRECISIONS:
        raise ObjsearchError(f"Unknown precision {value!r}: use one of {', '.join(PRECISIONS)}.")
    if value != "auto":
        return value
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class ClipEmbedder:
    """Embeds images and text into one L2-normalised float32 space with a CLIP model."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        *,
        precision: str | None = "fp32",
        batch_size: int = 64,
        backend: str | None = None,
    ) -> None:
        import torch

        self.model_id = resolve(model, ENV_CLIP_MODEL, DEFAULT_CLIP_MODEL) or DEFAULT_CLIP_MODEL
        if os.path.isdir(os.path.expanduser(self.model_id)):
            self.model_id = os.path.abspath(os.path.expanduser(self.model_id))
        self.device = device
        self.batch_size = max(1, int(batch_size))
        try:
            self._source = _find_source(os.path.expanduser(self.model_id))
            self.config = self._source.config()
            image_processor = self._source.image_processor()
            self.tokenizer = self._source.tokenizer()
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load CLIP model {self.model_id!r}: {first_line(exc)}\n"
                "Supply it either as a Hugging Face hub id (downloaded once on a machine with "
                "internet access, e.g. openai/clip-vit-base-patch32) or as a local folder saved "
                f"with save_pretrained: --clip-model PATH or {ENV_CLIP_MODEL}=PATH."
            ) from None
        self.precision = choose_precision(precision, device)
        self.dim = int(self.config.projection_dim)
        self._configure_preprocess(image_processor)
        self.backend = choose_backend(backend, device)
        self._model: Any = None
        self._vision: Any = None
        self._text: Any = None
        if self.backend == "openvino":
            key = self._source.files_key()
            try:
                self._vision = compile_clip_vision(
                    self._get_model, key, self.crop[0], self.precision
                )
                self._text = compile_clip_text(self._get_model, key, self.precision)
            except Exception as exc:  # a conversion problem must not stop the run
                log.warning(
                    "OpenVINO conversion of CLIP failed (%s); using PyTorch.", first_line(exc)
                )
                self.backend = "torch"
                self._vision = self._text = None
        if self.backend == "torch":
            self._get_model()  # load now: a broken weights file should fail here, not mid-run
        self._torch = torch
        self._text_cache: OrderedDict[tuple[str, bool], np.ndarray] = OrderedDict()

    def _get_model(self) -> Any:
        """The PyTorch model, loaded on first use (OpenVINO runs may never need it)."""
        if self._model is None:
            try:
                model = self._source.model().eval().to(self.device)
            except Exception as exc:
                raise ModelLoadError(
                    f"Could not load CLIP weights from {self.model_id!r}: {first_line(exc)}"
                ) from None
            if self.precision == "fp16" and self.device.startswith("cuda"):
                model = model.half()
            self._model = model
        return self._model

    @property
    def model(self) -> Any:
        return self._get_model()

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
    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return self._torch.autocast(self.device.split(":")[0], dtype=self._torch.bfloat16)
        return nullcontext()

    def _features(self, fn: Any, **inputs: Any) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), self._autocast():
            out = fn(**inputs)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return unit_rows(feats.float().cpu().numpy())

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed already-preprocessed pixel values (N, 3, H, W)."""
        if self._vision is not None:
            return unit_rows(self._vision(pixels))
        torch = self._torch
        dtype = (
            torch.float16
            if self.precision == "fp16" and self.device.startswith("cuda")
            else torch.float32
        )
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, dtype=dtype)
        return self._features(self.model.get_image_features, pixel_values=tensor)

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
            list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        )
        if self._text is not None:
            return unit_rows(
                self._text(tokens["input_ids"].numpy(), tokens["attention_mask"].numpy())
            )
        inputs = {
            k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")
        }
        return self._features(self.model.get_text_features, **inputs)

    def embed_text(self, query: str, *, ensemble: bool = True) -> np.ndarray:
        """One normalised vector for a text query, averaged over prompt templates."""
        query = " ".join(query.split())
        if not query:
            raise ObjsearchError("The text query is empty.")
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
