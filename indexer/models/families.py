"""The supported dual-encoder families and everything that differs between them.

objsearch embeds photos, crops and queries with any Hugging Face ``transformers`` dual
encoder (an image tower and a text tower trained into one space). The families differ in
a handful of ways: the model class, how an image becomes pixels, how text is padded,
whether prompt templates help, where the embedding size is written in the config, and
which inputs the towers take. Those differences live in the :data:`FAMILIES` table below
and nowhere else, so the embedder, the OpenVINO converter and the CLI read one record
instead of branching on names.

A checkpoint's family is read from its ``config.json`` (``model_type``), not from its
name: the fixed-resolution SigLIP 2 checkpoints (``google/siglip2-base-patch16-224``) are
``SiglipModel``s with a Gemma tokenizer, and only the NaFlex ones are ``Siglip2Model``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ModelLoadError

# Prompt ensembling: a query is embedded in these phrasings and the vectors averaged. Four
# phrasings keep most of the robustness of longer lists while text encoding stays within
# the query-latency budget (each phrasing is one more pass of the text encoder). CLIP and
# SigLIP were both evaluated zero-shot with phrasings like these.
ENGLISH_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of {}.",
    "a cropped photo of {}.",
    "a close-up photo of {}.",
)


# -- image inputs ------------------------------------------------------------------------
def _resample(proc: Any, default: Image.Resampling) -> Image.Resampling:
    value = getattr(proc, "resample", None)
    return Image.Resampling(int(value)) if value is not None else default


def _stats(proc: Any) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(proc.image_mean, dtype=np.float32).reshape(1, 1, 3)
    std = np.asarray(proc.image_std, dtype=np.float32).reshape(1, 1, 3)
    return mean, std


def _normalised(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 ``(x / 255 - mean) / std``, contiguous.

    One multiply-add per channel straight into the model's layout: about four times
    faster than dividing, subtracting and transposing the whole batch in float.
    """
    out = np.empty((pixels.shape[0], 3, *pixels.shape[1:3]), np.float32)
    scale = (1.0 / (255.0 * std)).reshape(3).astype(np.float32)
    offset = (-mean / std).reshape(3).astype(np.float32)
    for c in range(3):
        np.multiply(pixels[..., c], scale[c], out=out[:, c], casting="unsafe")
        out[:, c] += offset[c]
    return out


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


class CentreCrop:
    """CLIP's pixels: shortest side to ``resize_to``, centre crop, normalise.

    The same maths as ``CLIPImageProcessor`` with one PIL resize per image and one
    normalise per batch (the reference processor is several times slower on crops).
    """

    input_names = ("pixel_values",)

    def __init__(self, proc: Any) -> None:
        size = proc.size or {}
        crop = proc.crop_size or {}
        self.resize_to = int(size.get("shortest_edge") or size.get("height") or 224)
        self.crop = (
            int(crop.get("height", self.resize_to)),
            int(crop.get("width", self.resize_to)),
        )
        self.do_center_crop = bool(getattr(proc, "do_center_crop", True))
        self.mean, self.std = _stats(proc)
        self.resample = _resample(proc, Image.Resampling.BICUBIC)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.crop

    def _one(self, image: Image.Image) -> np.ndarray:
        image = _rgb(image)
        w, h = image.size
        short = self.resize_to
        if w <= h:
            new_w, new_h = short, max(1, int(short * h / w))
        else:
            new_w, new_h = max(1, int(short * w / h)), short
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), self.resample, reducing_gap=3.0)
        ch, cw = self.crop
        if not self.do_center_crop:
            return np.asarray(image.resize((cw, ch), self.resample))
        left = int(round((new_w - cw) / 2.0))
        top = int(round((new_h - ch) / 2.0))
        arr = np.asarray(image)
        if left < 0 or top < 0:  # smaller than the crop: pad with zeros, as CLIP does
            padded = np.zeros((max(ch, new_h), max(cw, new_w), 3), np.uint8)
            oy, ox = max(0, -top), max(0, -left)
            padded[oy : oy + new_h, ox : ox + new_w] = arr
            arr, top, left = padded, max(0, top), max(0, left)
        return arr[top : top + ch, left : left + cw]

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        batch = np.stack([self._one(im) for im in images])
        return {"pixel_values": _normalised(batch, self.mean, self.std)}


def open_clip_pixels(settings: Any) -> CentreCrop | Squash:
    """An open_clip model's pixels (see :func:`.openclip_files.image_settings`): CLIP's
    short-side resize and centre crop (``shortest``), or the whole photo squashed."""
    return Squash(settings) if settings.resize_mode == "squash" else CentreCrop(settings)


class Squash:
    """SigLIP's pixels: the whole photo resized to the model's square, aspect ignored.

    SigLIP was trained on squashed, uncropped images, so a tall crop keeps its top and
    bottom (CLIP's centre crop would cut them off).
    """

    input_names = ("pixel_values",)

    def __init__(self, proc: Any) -> None:
        size = proc.size or {}
        side = int(size.get("height") or size.get("shortest_edge") or 224)
        self.size = (side, int(size.get("width") or side))
        self.mean, self.std = _stats(proc)
        self.resample = _resample(proc, Image.Resampling.BICUBIC)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    def _one(self, image: Image.Image) -> np.ndarray:
        h, w = self.size
        image = _rgb(image)
        if image.size != (w, h):
            image = image.resize((w, h), self.resample, reducing_gap=3.0)
        return np.asarray(image)

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        batch = np.stack([self._one(im) for im in images])
        return {"pixel_values": _normalised(batch, self.mean, self.std)}


def naflex_grid(height: int, width: int, patch: int, max_patches: int) -> tuple[int, int]:
    """Rows and columns of patches for a photo under SigLIP 2's NaFlex patch budget.

    The photo is scaled by one factor on both axes (aspect kept), each side rounded up to
    whole patches, and the factor is the largest whose grid stays within ``max_patches``;
    found by bisection on the factor, as the reference processor does.
    """

    def grid(scale: float) -> tuple[int, int]:
        rows = max(1, math.ceil(height * scale / patch))
        cols = max(1, math.ceil(width * scale / patch))
        return rows, cols

    low, high = 1e-6, 100.0
    while high - low >= 1e-5:
        mid = (low + high) / 2
        rows, cols = grid(mid)
        if rows * cols <= max_patches:
            low = mid
        else:
            high = mid
    return grid(low)


class NaFlex:
    """SigLIP 2 NaFlex pixels: aspect-preserving resize, patches, padded patch sequence.

    Each photo keeps its aspect ratio on a grid of up to ``max_num_patches`` patches; the
    patch rows are flattened and padded to ``max_num_patches``, with a mask and the grid
    shape, which the model uses to resize its position embeddings per photo.
    """

    input_names = ("pixel_values", "pixel_attention_mask", "spatial_shapes")

    def __init__(self, proc: Any) -> None:
        self.patch = int(getattr(proc, "patch_size", 16) or 16)
        self.max_patches = int(getattr(proc, "max_num_patches", 256) or 256)
        self.mean, self.std = _stats(proc)
        self.resample = _resample(proc, Image.Resampling.BILINEAR)

    @property
    def image_size(self) -> tuple[int, int]:
        side = self.patch * int(math.isqrt(self.max_patches))
        return side, side

    def _one(self, image: Image.Image) -> tuple[np.ndarray, int, int]:
        image = _rgb(image)
        rows, cols = naflex_grid(image.height, image.width, self.patch, self.max_patches)
        size = (cols * self.patch, rows * self.patch)
        if image.size != size:
            image = image.resize(size, self.resample, reducing_gap=3.0)
        return np.asarray(image), rows, cols

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        p = self.patch
        pixels = np.zeros((len(images), self.max_patches, p * p * 3), np.float32)
        mask = np.zeros((len(images), self.max_patches), np.int32)
        shapes = np.zeros((len(images), 2), np.int64)
        for i, image in enumerate(images):
            arr, rows, cols = self._one(image)
            arr = (arr.astype(np.float32) / 255.0 - self.mean) / self.std
            # (rows*p, cols*p, 3) -> (rows*cols, p*p*3): patches row-major, each (p, p, 3)
            patches = arr.reshape(rows, p, cols, p, 3).transpose(0, 2, 1, 3, 4)
            n = rows * cols
            pixels[i, :n] = patches.reshape(n, p * p * 3)
            mask[i, :n] = 1
            shapes[i] = (rows, cols)
        return {"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": shapes}


OPENAI_CLIP_IDS = (
    "openai/clip-vit-base-patch32",
    "openai/clip-vit-base-patch16",
    "openai/clip-vit-large-patch14",
)
# Suggested checkpoints of each family and their embedding sizes.
CLIP_CHECKPOINTS = tuple(zip(OPENAI_CLIP_IDS, (512, 512, 768), strict=True))
SIGLIP_CHECKPOINTS = (
    ("google/siglip2-base-patch16-224", 768),
    ("google/siglip-base-patch16-224", 768),
    ("google/siglip-so400m-patch14-384", 1152),
)
NAFLEX_CHECKPOINTS = (
    ("google/siglip2-base-patch16-naflex", 768),
    ("google/siglip2-so400m-patch16-naflex", 1152),
)
ALTCLIP_CHECKPOINTS = (("BAAI/AltCLIP-m18", 768), ("BAAI/AltCLIP-m9", 768), ("BAAI/AltCLIP", 768))


# -- the registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class TextStyle:
    """How a family's text tower wants its tokens.

    ``max_length`` padding with no attention mask is how SigLIP's text towers were
    trained: they pool the *last* position, which must then be a pad token after a fixed
    number of positions; padding to the longest prompt instead changes the vectors.
    """

    padding: str  # "longest" or "max_length"
    attention_mask: bool
    padding_side: str | None = None  # None: the tokenizer's own
    trace_length: int = 7  # tokens per text when tracing; fixed-length towers need theirs

    @property
    def input_names(self) -> tuple[str, ...]:
        """The text tower's inputs, in the order the OpenVINO graph takes them."""
        return ("input_ids", "attention_mask") if self.attention_mask else ("input_ids",)


# Both SigLIP model classes share their text towers (see TextStyle).
SIGLIP_TEXT = TextStyle(padding="max_length", attention_mask=False, padding_side="right")


def _projection_dim(config: Any) -> int:
    """CLIP-style models project both towers to ``projection_dim``."""
    return int(config.projection_dim)


def _vision_width(config: Any) -> int:
    """SigLIP has no projection: an embedding is as wide as the image tower."""
    return int(config.vision_config.hidden_size)


def _licensed(
    checkpoints: tuple[tuple[str, int], ...], licence: str
) -> tuple[tuple[str, str], ...]:
    """One licence for every suggested checkpoint of a family."""
    return tuple((hub_id, licence) for hub_id, _ in checkpoints)


@dataclass(frozen=True)
class Family:
    """One supported kind of dual encoder (see the module docstring)."""

    name: str
    title: str
    model_types: tuple[str, ...]
    model_class: str
    image_inputs: Callable[[Any], Any]
    text: TextStyle
    templates: tuple[str, ...]
    embed_dim: Callable[[Any], int]
    hub_ids: tuple[tuple[str, int], ...]  # suggested checkpoints and their embedding sizes
    benchmark_shape: str  # the architecture the measured speed is for
    note: str
    # The licence of each suggested checkpoint's weights, as its model card states it.
    licenses: tuple[tuple[str, str], ...] = ()

    def license_of(self, hub_id: str) -> str:
        """The licence of a suggested checkpoint, or ``?`` when the table does not say."""
        return dict(self.licenses).get(hub_id, "?")

    def load_class(self) -> Any:
        import transformers

        return getattr(transformers, self.model_class)


FAMILIES: tuple[Family, ...] = (
    Family(
        name="clip",
        title="CLIP",
        model_types=("clip",),
        model_class="CLIPModel",
        image_inputs=CentreCrop,
        text=TextStyle(padding="longest", attention_mask=True),
        templates=ENGLISH_TEMPLATES,
        embed_dim=_projection_dim,
        hub_ids=CLIP_CHECKPOINTS,
        benchmark_shape="ViT-B/32",
        note="English",
        licenses=_licensed(CLIP_CHECKPOINTS, "MIT"),
    ),
    Family(
        name="siglip",
        title="SigLIP / SigLIP 2 (fixed resolution)",
        model_types=("siglip",),
        model_class="SiglipModel",
        image_inputs=Squash,
        text=SIGLIP_TEXT,
        templates=ENGLISH_TEMPLATES,
        embed_dim=_vision_width,
        hub_ids=SIGLIP_CHECKPOINTS,
        benchmark_shape="ViT-B/16, 224 px",
        note="higher published retrieval scores than CLIP of the same size; SigLIP 2 ids are multilingual",
        licenses=_licensed(SIGLIP_CHECKPOINTS, "Apache-2.0"),
    ),
    Family(
        name="siglip2",
        title="SigLIP 2 NaFlex (any aspect ratio)",
        model_types=("siglip2",),
        model_class="Siglip2Model",
        image_inputs=NaFlex,
        text=SIGLIP_TEXT,
        templates=ENGLISH_TEMPLATES,
        embed_dim=_vision_width,
        hub_ids=NAFLEX_CHECKPOINTS,
        benchmark_shape="ViT-B/16, 256 patches",
        note="keeps each crop's aspect ratio (long thin objects); multilingual",
        licenses=_licensed(NAFLEX_CHECKPOINTS, "Apache-2.0"),
    ),
    Family(
        name="altclip",
        title="AltCLIP (multilingual CLIP, XLM-R text tower)",
        model_types=("altclip",),
        model_class="AltCLIPModel",
        image_inputs=CentreCrop,
        text=TextStyle(padding="longest", attention_mask=True),
        # English phrasings around a query in another language hurt more than they help.
        templates=("{}",),
        embed_dim=_projection_dim,
        hub_ids=ALTCLIP_CHECKPOINTS,
        benchmark_shape="ViT-L/14 + XLM-R large",
        note="queries in 18 languages; ViT-L/14 image tower, so the slowest",
        licenses=_licensed(ALTCLIP_CHECKPOINTS, "CreativeML OpenRAIL-M (use restrictions)"),
    ),
    Family(
        name="open_clip",
        title="open_clip (MobileCLIP2, DataComp and LAION CLIPs)",
        model_types=("open_clip",),
        model_class="open_clip",  # open-clip-torch, not transformers (see openclip.py)
        image_inputs=open_clip_pixels,
        # open_clip pads every text with zeros to its 77 positions; no attention mask.
        text=TextStyle(
            padding="max_length", attention_mask=False, padding_side="right", trace_length=77
        ),
        templates=ENGLISH_TEMPLATES,
        embed_dim=lambda config: int(config.embed_dim),
        hub_ids=(
            ("hf-hub:timm/MobileCLIP2-S0-OpenCLIP", 512),
            ("hf-hub:laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K", 512),
        ),
        benchmark_shape="MobileCLIP2-S0",
        note="English; a local open_clip folder or an hf-hub: id (needs pip install "
        "'objsearch[openclip]' to convert, once); MobileCLIP2-S0: an 11.4M-parameter image "
        "tower (ViT-B/32: 88M), 71.5 % published ImageNet zero-shot (ViT-B/32: 63.3 %)",
        licenses=(
            ("hf-hub:timm/MobileCLIP2-S0-OpenCLIP", "Apple AMLR (research only, not OSI)"),
            ("hf-hub:laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K", "MIT"),
        ),
    ),
)

DEFAULT_FAMILY = "clip"


def family_named(name: str) -> Family:
    """The family called ``name`` (as recorded in an index)."""
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(name)


def family_title(name: str) -> str:
    """A family's display name, or the raw name for one this version does not know."""
    try:
        return family_named(name).title
    except KeyError:
        return repr(name)


def family_of(config: Any, model_id: str) -> Family:
    """The family of a loaded ``config.json``, or a clear error naming the supported ones."""
    model_type = str(getattr(config, "model_type", "") or "")
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.model_class} ({f.name})" for f in FAMILIES)
    raise ModelLoadError(
        f"{model_id!r} is a {model_type or 'unknown'!r} model, not a dual encoder objsearch "
        f"supports. Supported: {supported}. See `objsearch models`."
    )
