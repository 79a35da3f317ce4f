"""The models: CLIP (embeddings), the detector, where their files come from, and identity."""

from .clip import ClipEmbedder
from .detector import Detector

__all__ = ["ClipEmbedder", "Detector"]
