"""The write path: plan a run, turn photos into regions with vectors, commit them."""

from .pipeline import Indexer, IndexStats

__all__ = ["IndexStats", "Indexer"]
