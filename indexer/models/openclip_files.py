"""open_clip checkpoints on disk: how they are named, found and described, without torch.

An open_clip model is a folder in the layout open_clip publishes on the Hugging Face hub
(``timm/MobileCLIP2-S0-OpenCLIP``, ``laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K``):
``open_clip_config.json`` (``model_cfg``: the architecture; ``preprocess_cfg``: how
images become pixels) beside ``open_clip_model.safetensors`` or
``open_clip_pytorch_model.bin``. objsearch takes it as

* ``hf-hub:ORG/NAME``: open_clip's own spelling of a hub repository, read from the
  Hugging Face cache (downloaded there once when the hub can be reached);
* a local folder holding ``open_clip_config.json`` and no transformers ``config.json``
  (a folder with both loads through transformers: the same weights, another layout).

Everything here reads JSON and file names only, so the run-time path (see
:mod:`.converted`) finds a cached conversion of an open_clip model without torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from PIL import Image

HUB_PREFIX = "hf-hub:"
CONFIG_NAME = "open_clip_config.json"
WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
MODEL_TYPE = "open_clip"  # the family's model type (see families.py)
# open_clip's defaults for what a preprocess_cfg leaves out (OpenAI CLIP's statistics).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
RESIZE_MODES = ("shortest", "squash")


class OpenClipError(ValueError):
    """An open_clip folder objsearch cannot use, with the reason."""


def is_hub_name(model_id: str) -> bool:
    return model_id.startswith(HUB_PREFIX)


def hub_repo(model_id: str) -> str:
    """``ORG/NAME`` of an ``hf-hub:ORG/NAME`` id."""
    return model_id[len(HUB_PREFIX) :].strip("/")


def is_open_clip_folder(folder: str) -> bool:
    """True for a folder in open_clip's layout that is not also a transformers checkpoint."""
    return os.path.isfile(os.path.join(folder, CONFIG_NAME)) and not os.path.isfile(
        os.path.join(folder, "config.json")
    )


def is_open_clip(model_id: str) -> bool:
    """True when ``model_id`` (a hub id, ``hf-hub:`` id or path) names an open_clip model."""
    if is_hub_name(model_id):
        return True
    path = os.path.expanduser(model_id)
    return os.path.isdir(path) and is_open_clip_folder(path)


def hub_snapshot(model_id: str) -> str | None:
    """The cached snapshot folder of an ``hf-hub:`` id, or None when it is not cached."""
    from ..settings import hub_cache_root

    repo = os.path.join(hub_cache_root(), "models--" + hub_repo(model_id).replace("/", "--"))
    try:
        with open(os.path.join(repo, "refs", "main"), encoding="utf-8") as fh:
            folder = os.path.join(repo, "snapshots", fh.read().strip())
    except OSError:
        return None
    return folder if os.path.isfile(os.path.join(folder, CONFIG_NAME)) else None


def download(model_id: str) -> str:
    """Fetch an ``hf-hub:`` repository's config and weights into the Hugging Face cache."""
    from huggingface_hub import snapshot_download

    return snapshot_download(hub_repo(model_id), allow_patterns=[CONFIG_NAME, *WEIGHT_NAMES])


@dataclass(frozen=True)
class OpenClipConfig:
    """The parts of ``open_clip_config.json`` objsearch uses (``model_type`` names the
    family, as a transformers config's does)."""

    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    model_type: str = MODEL_TYPE

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def context_length(self) -> int:
        return int(self.model_cfg.get("text_cfg", {}).get("context_length", 77))

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.get("size") or self.model_cfg["vision_cfg"]["image_size"]
        sides = {int(s) for s in size} if isinstance(size, list | tuple) else {int(size)}
        if len(sides) != 1:
            raise OpenClipError(f"non-square input size {size} is not supported")
        return sides.pop()


def read_config(folder: str) -> OpenClipConfig:
    """The folder's ``open_clip_config.json``; refuses what the torch-free path cannot run.

    Only models with open_clip's own CLIP tokenizer (cleaned to lower case, truncated) can
    have their queries tokenized without open_clip; models with a Hugging Face text tower
    or tokenizer (the SigLIP and XLM-R ones) are loaded through transformers instead.
    """
    try:
        with open(os.path.join(folder, CONFIG_NAME), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise OpenClipError(f"cannot read {CONFIG_NAME}: {exc}") from None
    model_cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
    if not isinstance(model_cfg, dict) or "embed_dim" not in model_cfg:
        raise OpenClipError(f"{CONFIG_NAME} has no model_cfg with an embed_dim")
    text = model_cfg.get("text_cfg", {})
    unsupported = [
        key
        for key in ("hf_model_name", "hf_tokenizer_name", "reduction_mask")
        if text.get(key) or text.get("tokenizer_kwargs", {}).get(key)
    ]
    clean = text.get("tokenizer_kwargs", {}).get("clean", "lower")
    if unsupported or clean != "lower":
        what = ", ".join(unsupported) or f"clean={clean!r}"
        raise OpenClipError(
            f"its text tower uses {what}; objsearch runs open_clip models with the CLIP "
            "tokenizer (MobileCLIP2, the OpenAI, LAION and DataComp CLIPs)"
        )
    preprocess = data.get("preprocess_cfg", {}) if "model_cfg" in data else {}
    return OpenClipConfig(model_cfg, preprocess if isinstance(preprocess, dict) else {})


def image_settings(folder: str) -> SimpleNamespace:
    """The image preprocessing, from ``preprocess_cfg`` with open_clip's defaults, in the
    form :class:`~indexer.models.families.CentreCrop` and ``Squash`` read.

    ``shortest`` is open_clip's resize-the-short-side-then-centre-crop (CLIP's),
    ``squash`` resizes to the square; MobileCLIP2-S0 takes bilinear resizing and no
    normalisation (mean 0, std 1), the CLIPs OpenAI's bicubic and statistics.
    """
    config = read_config(folder)
    pre = config.preprocess_cfg
    side = config.image_size
    mode = str(pre.get("resize_mode", "shortest"))
    interpolation = str(pre.get("interpolation", "bicubic"))
    if mode not in RESIZE_MODES or interpolation not in RESAMPLE:
        raise OpenClipError(
            f"preprocessing resize_mode={mode!r}, interpolation={interpolation!r} is not "
            f"supported (resize modes: {', '.join(RESIZE_MODES)})"
        )
    return SimpleNamespace(
        size={"shortest_edge": side, "height": side, "width": side},
        crop_size={"height": side, "width": side},
        do_center_crop=True,
        image_mean=list(pre.get("mean") or OPENAI_MEAN),
        image_std=list(pre.get("std") or OPENAI_STD),
        resample=int(RESAMPLE[interpolation]),
        resize_mode=mode,
    )
