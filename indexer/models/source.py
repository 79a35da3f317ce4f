"""Where the models' files come from, checked before any weights are read.

An embedding model is named by a hub id (``org/name``) or a path: a local folder, the Hugging
Face cache, or the hub. Resolving it once into a :class:`ModelSource` lets every part
(config, tokenizer, processor, weights) load from the same place, and gives converted
copies a stable key without loading the weights. Detector weights are a local file or a
name ultralytics downloads (:func:`detector_weights`).

These checks are cheap (a ``stat``, a cached config, one DNS lookup), so a run resolves
both models before loading either: a missing detector is reported before seconds of CLIP
loading and conversion, and a run that stops there leaves no index folder behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..settings import hub_cache_root, hub_endpoint, hub_offline
from .families import Family
from .openclip_files import download, hub_repo, hub_snapshot, is_hub_name

DETECTOR_DOWNLOAD_HOST = "github.com"  # ultralytics fetches named weights from its releases

# A Hugging Face repository id: ``name`` or ``org/name`` of letters, digits, ``-_.``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


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
    """True unless the Hugging Face hub is switched off or its host does not resolve."""
    if hub_offline():
        return False
    endpoint = hub_endpoint()
    return host_reachable(endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0])


def looks_like_path(model_id: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a path."""
    return (
        model_id.startswith((".", "/", "~"))
        or model_id.count("/") > 1
        or os.sep + os.sep in model_id
    )


def is_hub_id(name: str) -> bool:
    """True when ``name`` is a syntactically valid Hugging Face repository id."""
    return bool(_HUB_ID.match(name)) and not name.endswith(".") and ".." not in name


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
        _quiet_transformers()
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.model_id, **self.kwargs)

    def image_processor(self) -> Any:
        """The image preprocessing settings (size, crop, mean, std, resample, patches).

        Read straight from the processor's JSON where it has them: transformers' image
        processors import torchvision, seconds of start-up for a few numbers. Otherwise
        (an unusual layout) ``AutoImageProcessor`` reads them.
        """
        settings = self.json_image_settings()
        if settings is not None:
            return settings
        _quiet_transformers()
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(self.model_id, **self.kwargs)

    def json_image_settings(self) -> SimpleNamespace | None:
        """The settings from the processor's JSON, or None when it does not hold them."""
        for name, section in (
            ("preprocessor_config.json", None),
            ("processor_config.json", "image_processor"),
        ):
            path = self._file(name)
            if path is None:
                continue
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if section is not None:
                data = data.get(section)
            if isinstance(data, dict) and {"image_mean", "image_std"} <= data.keys():
                return _sized(data)
        return None

    def _file(self, name: str) -> str | None:
        """The path of one of the model's files (local or in the hub cache), or None."""
        if os.path.isdir(self.model_id):
            path = os.path.join(self.model_id, name)
            return path if os.path.isfile(path) else None
        from transformers.utils import cached_file

        try:
            return cached_file(
                self.model_id, name, _raise_exceptions_for_missing_entries=False, **self.kwargs
            )
        except Exception:
            return None

    def tokenizer(self) -> Any:
        _quiet_transformers()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_id, **self.kwargs)

    def model(self, family: Family) -> Any:
        _quiet_transformers()
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
        return folder_key(os.path.dirname(config_path))


def folder_key(folder: str) -> str:
    """The digest :meth:`ModelSource.files_key` gives for the model files in ``folder``."""
    digest = hashlib.blake2b(digest_size=12)
    for name in sorted(os.listdir(folder)):
        if name.endswith((".json", ".safetensors", ".bin", ".txt", ".model")):
            st = os.stat(os.path.join(folder, name))
            digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()


def model_folder(model_id: str) -> str | None:
    """The folder holding ``model_id``'s files on this machine, found without transformers.

    A local folder is itself; a hub id is its snapshot of ``main`` in the Hugging Face
    cache. None when the files are not here (the full loading path then decides).
    """
    path = os.path.expanduser(model_id)
    if os.path.isdir(path):
        return path
    if is_hub_name(model_id):
        return hub_snapshot(model_id)
    if looks_like_path(model_id) or not is_hub_id(model_id) or "/" not in model_id:
        return None
    repo = os.path.join(hub_cache_root(), "models--" + model_id.replace("/", "--"))
    try:
        with open(os.path.join(repo, "refs", "main"), encoding="utf-8") as fh:
            commit = fh.read().strip()
    except OSError:
        return None
    folder = os.path.join(repo, "snapshots", commit)
    return folder if os.path.isfile(os.path.join(folder, "config.json")) else None


def _sized(data: dict[str, Any]) -> SimpleNamespace | None:
    """Settings with ``size``/``crop_size`` as dicts, as transformers would hold them.

    Older processor files (openai/clip-vit-base-patch32's among them) write a bare number:
    a shortest edge for ``size`` (a square side for the squashing families), a square for
    ``crop_size``. Anything else is left to transformers (None).
    """
    size, crop = data.get("size"), data.get("crop_size")
    if isinstance(size, int):
        size = {"shortest_edge": size, "height": size, "width": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    if not all(v is None or isinstance(v, dict) for v in (size, crop)):
        return None
    return SimpleNamespace(**{**data, "size": size, "crop_size": crop})


def _quiet_transformers() -> None:
    """Load reports and weight-loading bars are noise here (once transformers is needed)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def find_source(model_id: str) -> ModelSource:
    """A local folder, the Hugging Face cache, or (when reachable) the hub, in that order.

    A local folder, or a hub id whose snapshot is in the cache, is found from the file
    system alone: transformers is imported only when a model is actually loaded.
    """
    if os.path.isdir(model_id):
        return ModelSource(model_id, {})
    if is_hub_name(model_id):
        return ModelSource(open_clip_hub_folder(model_id), {})
    if os.path.exists(model_id):
        raise OSError(f"{model_id} is a file; a local model is a folder saved with save_pretrained")
    if looks_like_path(model_id):
        raise OSError("no such folder")
    if not is_hub_id(model_id):
        raise OSError("not a folder here, and not a valid Hugging Face hub id (org/name)")
    cached = ModelSource(model_id, {"local_files_only": True})
    if model_folder(model_id) is not None:
        return cached
    _quiet_transformers()
    try:
        cached.config()
        return cached
    except Exception:
        if not hub_reachable():
            raise OSError(
                "it is not a local folder, not in the Hugging Face cache, and the hub cannot "
                "be reached"
            ) from None
    return ModelSource(model_id, {})


def open_clip_hub_folder(model_id: str) -> str:
    """The folder of an ``hf-hub:`` open_clip id: its cached snapshot, else downloaded."""
    repo = hub_repo(model_id)
    if not is_hub_id(repo) or "/" not in repo:
        raise OSError(f"{repo!r} is not a Hugging Face hub id (hf-hub:org/name)")
    folder = hub_snapshot(model_id)
    if folder is not None:
        return folder
    if not hub_reachable():
        raise OSError("it is not in the Hugging Face cache, and the hub cannot be reached")
    return download(model_id)


def detector_weights(name: str) -> str:
    """The detector weights to load: a local file or folder, or a name ultralytics fetches.

    A bare name such as ``yolo11n.pt`` is looked up where ultralytics looks (the working
    folder, then its weights folder) and otherwise needs the internet; a path must exist.
    Raises ``FileNotFoundError`` with the reason when the weights cannot be had.
    """
    path = os.path.expanduser(name)
    if os.path.exists(path):
        return path
    if looks_like_path(name) or os.sep in name:
        raise FileNotFoundError("no such file")
    from ultralytics.utils import SETTINGS

    weights_dir = Path(SETTINGS.get("weights_dir") or "weights")
    if (weights_dir / name).is_file():
        return str(weights_dir / name)
    if not host_reachable(DETECTOR_DOWNLOAD_HOST):
        raise FileNotFoundError(
            "no such file here, not in the ultralytics weights folder, and the internet "
            "cannot be reached to download it"
        )
    return name
