"""Query -> results: the :class:`Searcher`, query composition and search filters."""

from .filters import SearchFilters
from .searcher import Searcher, SearchResult

__all__ = ["SearchFilters", "SearchResult", "Searcher"]
