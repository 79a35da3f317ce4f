"""Query -> results: the :class:`Searcher` (and, next to it, future search filters)."""

from .searcher import Searcher, SearchResult

__all__ = ["SearchResult", "Searcher"]
