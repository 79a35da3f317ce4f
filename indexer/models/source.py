"""Where a model's files come from: a local folder, the Hugging Face cache, or the hub.

A model is named by a hub id (``org/name``) or a path. Resolving it once into a
:class:`ModelSource` lets every part (config, tokenizer, processor, weights) load from the
same place, and gives converted copies a stable key without loading the weights.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any

from .families import Family


def host_reachable(host: str, timeout: float = 2.0) -> bool:
    """Cheap DNS check so an offline machine fails in milliseconds, not after retries."""
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(old)


def hub_reachable() -> bool:
    """Whether the Hugging Face hub (or ``HF_ENDPOINT``) can be reached, unless offline mode."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return host_reachable(endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0])


def looks_like_path(model_id: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a path."""
    return (
        model_id.startswith((".", "/", "~"))
        or model_id.count("/") > 1
        or os.sep + os.sep in model_id
    )


def canonical_model_id(model_id: str) -> str:
    """Local folders are named by their absolute path, hub ids as given."""
    if os.path.isdir(os.path.expanduser(model_id)):
        return os.path.abspath(os.path.expanduser(model_id))
    return model_id


@dataclass
class ModelSource:
    """Where a model's files come from, and how to load its parts from there."""

    model_id: str
    kwargs: dict[str, Any]

    def config(self) -> Any:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.model_id, **self.kwargs)

    def image_processor(self) -> Any:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(self.model_id, **self.kwargs)

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_id, **self.kwargs)

    def model(self, family: Family) -> Any:
        return family.load_class().from_pretrained(self.model_id, **self.kwargs)

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
            if name.endswith((".json", ".safetensors", ".bin", ".txt", ".model")):
                st = os.stat(os.path.join(folder, name))
                digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
        return digest.hexdigest()


def find_source(model_id: str) -> ModelSource:
    """A local folder, the Hugging Face cache, or (when reachable) the hub, in that order."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and weight-loading bars are noise here
    hf_logging.disable_progress_bar()
    if os.path.isdir(model_id):
        return ModelSource(model_id, {})
    if os.path.exists(model_id):
        raise OSError(f"{model_id} is a file; a local model is a folder saved with save_pretrained")
    cached = ModelSource(model_id, {"local_files_only": True})
    try:
        cached.config()
        return cached
    except Exception:
        if looks_like_path(model_id) or not hub_reachable():
            raise OSError(
                "it is not a local folder, not in the Hugging Face cache, and the hub cannot "
                "be reached"
            ) from None
    return ModelSource(model_id, {})
