"""A model's lifecycle: which embedding model to run, the one factory, thread-safe calls.

A :class:`ModelChoice` is what people choose (model, device, precision, backend), as given:
``None`` means "the environment, the index's record, then the default", settled by
:mod:`indexer.settings` when the model loads. Index runs, Ray actors, the searcher, the
text preload and ``localize`` all load through :meth:`ModelChoice.embedder` and
:meth:`ModelChoice.text_encoder`, so a setting means the same everywhere.

The models themselves are safe to share between threads (see :func:`serialised`): a server
hands one model to every request thread without wrapping it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from ..settings import (
    backend_name,
    device_name,
    precision_name,
    resolve_clip_model,
    resolve_device,
)

if TYPE_CHECKING:
    from .text import OpenVinoTextEncoder

F = TypeVar("F", bound=Callable[..., Any])
_LOCKS_LOCK = threading.Lock()  # guards only the creation of each model's own lock


def model_lock(model: object) -> threading.RLock:
    """The model instance's own lock, made on first use (one per instance, reentrant)."""
    lock = model.__dict__.get("_model_lock")
    if lock is None:
        with _LOCKS_LOCK:
            lock = model.__dict__.setdefault("_model_lock", threading.RLock())
    return lock


def serialised(method: F) -> F:
    """Run a model's inference method under the instance's own lock.

    Compiled OpenVINO requests, PyTorch modules in eval and the text-vector cache are not
    safe to call from two threads at once; the lock is reentrant, so a locked method may
    call another (``embed_text`` calls ``embed_texts``).
    """

    @wraps(method)
    def locked(self: object, *args: Any, **kwargs: Any) -> Any:
        with model_lock(self):
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelChoice:
    """The embedding model asked for: ``clip_model`` (hub id or folder), ``device``
    (auto, cpu, cuda[:N]), ``precision`` and ``backend``; ``None`` leaves each to settings."""

    clip_model: str | None = None
    device: str | None = None
    precision: str | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        # Unknown names are refused now, before any model is looked for (seconds).
        device_name(self.device), precision_name(self.precision), backend_name(self.backend)

    def with_model(self, recorded: str | None) -> ModelChoice:
        """This choice with its model settled: the one given, else ``recorded`` (an
        index's model), else the environment's or the default."""
        return replace(self, clip_model=resolve_clip_model(self.clip_model, recorded))

    def embedder(
        self,
        *,
        batch_size: int = 64,
        calibration: Sequence[str] | None = None,
        calibration_key: str | None = None,
    ) -> Any:
        """Load the embedding model: from the conversion cache when it holds everything
        (no torch), else the full model, which converts it for next time."""
        from .converted import load_embedder

        return load_embedder(
            resolve_clip_model(self.clip_model),
            resolve_device(self.device),
            precision=self.precision,
            backend=self.backend,
            batch_size=batch_size,
            calibration=calibration,
            calibration_key=calibration_key,
        )

    def text_encoder(self) -> OpenVinoTextEncoder | None:
        """The torch-free text encoder, or None when only the full model can embed text."""
        from .text import load_text_encoder

        return load_text_encoder(
            resolve_clip_model(self.clip_model),
            self.device,
            precision=self.precision,
            backend=self.backend,
        )
