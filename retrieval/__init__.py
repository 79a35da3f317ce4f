"""objsearch retrieval: text or image queries -> matching object crops and their photos.

from retrieval import Searcher
for hit in Searcher("my-index").search(text="a flowerpot", top_k=5):
    print(hit.score, hit.image, hit.box, hit.label)

Sub-packages: ``search`` (the searcher, query composition, filters), ``duplicates``,
``localize`` (CLIP sliding-window localisation),
``export`` (JSON Lines), ``xmp`` (XMP sidecars), ``cli`` (the ``objsearch`` command).
"""

from importlib import import_module

__all__ = [
    "SearchFilters",
    "SearchRequest",
    "SearchResult",
    "Searcher",
    "create_app",
    "export_jsonl",
    "export_records",
    "export_sidecars",
]


# Imported on first use (PEP 562): the web stack, the exporters and even the searcher (and
# with it SQLAlchemy) load only when a caller asks for them.
_LAZY = {
    "SearchFilters": ".search",
    "SearchRequest": ".search",
    "SearchResult": ".search",
    "Searcher": ".search",
    "create_app": ".serve",
    "export_jsonl": ".export",
    "export_records": ".export",
    "export_sidecars": ".xmp",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
