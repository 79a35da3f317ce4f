"""objsearch retrieval: text or image queries -> matching object crops and their photos.

from retrieval import Searcher
for hit in Searcher("my-index").search(text="a flowerpot", top_k=5):
    print(hit.score, hit.image, hit.box, hit.label)

Sub-packages: ``search`` (the searcher, query composition, filters), ``duplicates``,
``localize`` (CLIP sliding-window localisation),
``export`` (JSON Lines), ``cli`` (the ``objsearch`` command).
"""

from .search import Searcher, SearchFilters, SearchResult

__all__ = [
    "SearchFilters",
    "SearchResult",
    "Searcher",
    "create_app",
    "export_jsonl",
    "export_records",
]


def __getattr__(name: str) -> object:
    """``create_app`` and the exporters on first use: a search imports neither."""
    if name == "create_app":
        from .serve import create_app

        return create_app
    if name in ("export_jsonl", "export_records"):
        from . import export

        return getattr(export, name)
    raise AttributeError(name)
