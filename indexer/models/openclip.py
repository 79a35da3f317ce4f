"""open_clip models (MobileCLIP2, DataComp and LAION CLIPs) as an embedding family.

:class:`OpenClipEmbedder` is :class:`~indexer.models.clip.ClipEmbedder` for a checkpoint in
open_clip's layout (see :mod:`.openclip_files`): open_clip (``open-clip-torch``, the
``openclip`` extra) builds the PyTorch model from ``open_clip_config.json`` and its
weights, and the rest is shared: the same sessions (PyTorch, or both towers converted once
to OpenVINO IR with fp16 weights), int8 calibration, prompt ensembling and probe.

What differs is read from the checkpoint, not assumed: pixels follow its
``preprocess_cfg`` (MobileCLIP2-S0 resizes bilinearly and does not normalise; the CLIPs
use OpenAI's bicubic resize and statistics), and texts are tokenized by a ``tokenizers``
copy of open_clip's CLIP tokenizer (:mod:`.openclip_tokens`), recorded beside the text
tower's conversion so later runs need neither torch, timm nor open_clip. MobileCLIP2's
image towers are re-parameterised (their training-time branches fused) before conversion,
as Apple prescribes for inference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ModelLoadError, first_line
from .clip import ClipEmbedder, find_clip_source
from .families import family_named
from .openclip_files import (
    CONFIG_NAME,
    MODEL_TYPE,
    WEIGHT_NAMES,
    OpenClipConfig,
    OpenClipError,
    image_settings,
    read_config,
)
from .openclip_tokens import CLEAN, PAD_ID, build_tokenizer, clean_query
from .openvino import text_ir_dir
from .source import folder_key
from .text import QueryRecipe, recipe_recorded, recipe_tokenizer, save_recipe

log = logging.getLogger("objsearch")

INSTALL_HINT = "pip install 'objsearch[openclip]' (open-clip-torch) to convert it, once"


def load_open_clip(folder: str) -> Any:
    """The open_clip model in ``folder`` with its weights, in eval mode, re-parameterised.

    Raises ``ModuleNotFoundError`` when open_clip is not installed and ``FileNotFoundError``
    when the folder has no weights (open_clip would silently keep random ones).
    """
    import os

    if not any(os.path.isfile(os.path.join(folder, n)) for n in WEIGHT_NAMES):
        raise FileNotFoundError(f"no {' or '.join(WEIGHT_NAMES)} beside {CONFIG_NAME}")
    import open_clip
    from timm.utils.model import reparameterize_model

    model = open_clip.create_model(f"local-dir:{folder}", device="cpu")
    return reparameterize_model(model.eval())


def towers(model: Any) -> Any:
    """``model`` with the tower methods the sessions call (``get_image_features``,
    ``get_text_features``): open_clip's unnormalised ``encode_image`` / ``encode_text``."""
    import torch

    class OpenClipTowers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.model.encode_image(pixel_values)

        def get_text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(input_ids)

    return OpenClipTowers().eval()


def query_recipe(config: OpenClipConfig) -> QueryRecipe:
    """How open_clip tokenizes: cleaned, framed, truncated and zero-padded to 77 ids."""
    return QueryRecipe(
        family=MODEL_TYPE,
        dim=config.embed_dim,
        max_length=config.context_length,
        padding="max_length",
        padding_side="right",
        truncation_side="right",
        pad_id=PAD_ID,
        pad_token="!",
        clean=CLEAN,
    )


class OpenClipEmbedder(ClipEmbedder):
    """An open_clip checkpoint (a folder or ``hf-hub:`` id) as a dual-encoder embedder.

    Takes the arguments of :class:`~indexer.models.clip.ClipEmbedder` and offers its
    interface; ``config`` is the checkpoint's :class:`~.openclip_files.OpenClipConfig`.
    """

    config: OpenClipConfig

    def _load_files(self) -> Any:
        try:
            self._folder = str(find_clip_source(self.model_id).model_id)
            self.config = read_config(self._folder)
            settings = image_settings(self._folder)
            self._tokenizer_json = build_tokenizer().to_str()
        except (OpenClipError, FileNotFoundError) as exc:
            raise ModelLoadError(
                f"Could not use open_clip model {self.model_id!r}: {first_line(exc)}"
            ) from None
        self.family = family_named(MODEL_TYPE)
        self.recipe = query_recipe(self.config)
        self.tokenizer = recipe_tokenizer(self.recipe, self._tokenizer_json)
        return settings

    def _files_key(self) -> str | None:
        return folder_key(self._folder)

    def _max_text_length(self) -> int:
        return self.config.context_length

    def _record_recipe(self, key: str) -> None:
        folder = text_ir_dir(self.family.name, key)
        if not recipe_recorded(folder):
            save_recipe(folder, self.recipe, self._tokenizer_json)

    def _load_weights(self) -> Any:
        try:
            return towers(load_open_clip(self._folder))
        except ModuleNotFoundError as exc:
            raise ModelLoadError(
                f"{self.model_id!r} is an open_clip model and {exc.name} is not installed: "
                f"{INSTALL_HINT}."
            ) from None
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load the weights of {self.model_id!r}: {first_line(exc)}"
            ) from None

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """open_clip's token ids: 77 per text, zero-padded, the end token kept last."""
        encodings = self.tokenizer.encode_batch([clean_query(t) for t in texts])
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64)}
