"""Query -> results: the :class:`Searcher`, query composition and search filters.

Imported on first use (PEP 562): a command can import :mod:`.compose` or :mod:`.preload`
without SQLAlchemy, which the searcher and the filters need.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type checker sees the real names; at run time they load on first use
    from .filters import SearchFilters
    from .request import SearchRequest
    from .results import SearchResult
    from .searcher import Searcher

_LAZY = {
    "SearchFilters": ".filters",
    "SearchRequest": ".request",
    "Searcher": ".searcher",
    "SearchResult": ".results",
}

__all__ = ["SearchFilters", "SearchRequest", "SearchResult", "Searcher"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
