"""``objsearch models save``: make an offline copy of a model on a machine with internet.

A dual encoder is downloaded from the Hugging Face hub and written with ``save_pretrained``
(weights, config, tokenizer and image processor: everything objsearch loads), an open_clip
one (``hf-hub:ORG/NAME``) as its ``open_clip_config.json`` and weights file; an ultralytics
detector's weights file is downloaded by ultralytics (or copied, when it is a local file).
The folder or file can then be copied to an offline machine and named with
``OBJSEARCH_CLIP_MODEL`` / ``OBJSEARCH_DETECTOR``.

Everything is written to a temporary name beside the destination and renamed into place
once complete, so a failed download never leaves a half-written model behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError, first_line
from ..settings import ENV_CLIP_MODEL, ENV_DETECTOR, configure_ultralytics
from .detector import check_detector_file
from .families import family_of
from .openclip_files import (
    CONFIG_NAME,
    MODEL_TYPE,
    WEIGHT_NAMES,
    OpenClipError,
    is_hub_name,
    is_open_clip,
    read_config,
)
from .source import host_reachable, hub_reachable, open_clip_hub_folder

DETECTOR_SUFFIXES = (".pt",)
_RELEASES_HOST = "github.com"  # where ultralytics publishes its weights


@dataclass(frozen=True)
class SavedModel:
    """What ``save_model`` wrote."""

    kind: str  # "dual encoder" or "detector"
    source: str
    path: Path
    family: str | None = None
    embed_dim: int | None = None

    @property
    def env_var(self) -> str:
        return ENV_DETECTOR if self.kind == "detector" else ENV_CLIP_MODEL


def is_detector_name(source: str) -> bool:
    """Ultralytics detectors are ``.pt`` files or names (``yolo11n.pt``, ``rtdetr-l.pt``)."""
    return source.lower().endswith(DETECTOR_SUFFIXES)


def _fresh_destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ModelLoadError(f"{dest} already exists; choose a new folder (nothing was written).")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"Cannot create {dest.parent}: {first_line(exc)}") from None


def _publish(tmp: Path, dest: Path) -> None:
    if dest.is_dir():  # an empty folder the user made beforehand
        dest.rmdir()
    os.replace(tmp, dest)


def save_model(source: str, dest: str | Path) -> SavedModel:
    """Download (or copy) ``source`` into ``dest``, ready for offline use.

    A dual encoder becomes the folder ``dest`` (new or empty); a detector becomes the file
    ``dest/<name>.pt`` (``dest`` may hold other models).
    """
    dest = Path(dest).expanduser().absolute()
    if is_detector_name(source):
        return _save_detector(source, dest)
    _fresh_destination(dest)
    if is_open_clip(source):
        return _save_open_clip(source, dest)
    return _save_dual_encoder(source, dest)


def _save_open_clip(source: str, dest: Path) -> SavedModel:
    """An open_clip checkpoint (``hf-hub:`` id or folder): its config and weights files."""
    try:
        folder = Path(open_clip_hub_folder(source) if is_hub_name(source) else source)
        config = read_config(str(folder.expanduser()))
    except (OSError, OpenClipError) as exc:
        raise ModelLoadError(
            f"Cannot save open_clip model {source!r}: {first_line(exc)}. Run `objsearch models "
            "save` on a machine with internet access and copy the folder here (see the "
            'README\'s "No internet?" section).'
        ) from None
    files = [folder / n for n in (CONFIG_NAME, *WEIGHT_NAMES) if (folder / n).is_file()]
    if len(files) < 2:
        raise ModelLoadError(
            f"{source!r} has no {' or '.join(WEIGHT_NAMES)} (nothing was written)."
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for path in files:  # the hub cache links to its blobs: copy the contents
            shutil.copy2(path, tmp / path.name)
        _publish(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelLoadError(f"Could not save {source!r}: {first_line(exc)}") from None
    return SavedModel("dual encoder", source, dest, MODEL_TYPE, config.embed_dim)


def _save_dual_encoder(source: str, dest: Path) -> SavedModel:
    from transformers import AutoConfig, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    local = Path(source).expanduser()
    if not local.is_dir() and not hub_reachable():
        raise ModelLoadError(
            f"Cannot download {source!r}: the Hugging Face hub cannot be reached from this "
            "machine. Run `objsearch models save` on a machine with internet access and copy "
            'the folder here (see the README\'s "No internet?" section).'
        )
    name = str(local) if local.is_dir() else source
    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as exc:
        raise ModelLoadError(f"Cannot read the config of {source!r}: {first_line(exc)}") from None
    family = family_of(config, source)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        model = family.load_class().from_pretrained(name)
        model.save_pretrained(tmp)
        AutoProcessor.from_pretrained(name).save_pretrained(tmp)
        _publish(tmp, dest)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelLoadError(f"Could not save {source!r}: {first_line(exc)}") from None
    return SavedModel("dual encoder", source, dest, family.name, family.embed_dim(config))


def _save_detector(source: str, dest: Path) -> SavedModel:
    configure_ultralytics()
    local = Path(source).expanduser()
    target = dest / local.name
    if target.exists():
        raise ModelLoadError(f"{target} already exists (nothing was written).")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"Cannot create {dest}: {first_line(exc)}") from None
    tmp = Path(tempfile.mkdtemp(prefix=".objsearch-save-", dir=dest))
    try:
        if local.is_file():
            shutil.copy2(local, tmp / local.name)
        else:
            if os.sep in source or not host_reachable(_RELEASES_HOST):
                raise ModelLoadError(
                    f"Cannot download detector {source!r}: it is not a local file and the "
                    "ultralytics releases cannot be reached from this machine. Run `objsearch "
                    "models save` on a machine with internet access and copy the file here "
                    '(see the README\'s "No internet?" section).'
                )
            from ultralytics.utils.downloads import attempt_download_asset

            attempt_download_asset(str(tmp / local.name))
            if not (tmp / local.name).is_file():
                raise ModelLoadError(f"ultralytics has no downloadable model named {source!r}.")
        check_detector_file(str(tmp / local.name))
        os.replace(tmp / local.name, target)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"Could not save detector {source!r}: {first_line(exc)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SavedModel("detector", source, target)
