"""The models: CLIP (embeddings), the detector, where their files come from, and identity.

Submodules are imported on first use: a text search needs :mod:`.text` only, not PyTorch,
transformers or ultralytics.
"""

from importlib import import_module

_LAZY = {"ClipEmbedder": ".clip", "Detector": ".detector"}

__all__ = ["ClipEmbedder", "Detector"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
