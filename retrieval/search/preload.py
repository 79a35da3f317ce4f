"""Compile the text encoder on a second core while the rest of a search is still importing.

A cold text search spends its time in two kinds of work: Python imports (SQLAlchemy, FAISS,
the CLI framework), which hold the interpreter lock, and OpenVINO compiling and first
running the text tower, which does not. :class:`TextPreload` starts the second on a thread
as soon as the command knows its index and model, so the two overlap; the searcher then
takes the finished encoder (:class:`~retrieval.search.searcher.Searcher` ``preload=``).

The index's model is read with plain ``sqlite3`` (no SQLAlchemy yet). Anything unexpected
(no index, an unreadable database, no cached conversion) gives no preload, and the searcher
loads the model itself as it always does.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from urllib.parse import quote

from indexer.models.lifecycle import ModelChoice
from indexer.models.text import OpenVinoTextEncoder
from indexer.settings import expand_path

# ``indexer.store.schema.DB_NAME`` and the ``Meta`` table's name, read here without
# importing SQLAlchemy (tests/retrieval/search/test_preload.py keeps them equal).
INDEX_DB = "objsearch.db"
META_TABLE = "meta"


def recorded_model(index_dir: str | os.PathLike[str]) -> str | None:
    """The embedding model an index records, read-only and without SQLAlchemy; else None."""
    path = os.path.join(expand_path(index_dir), INDEX_DB)
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=1.0)
        try:
            row = conn.execute(
                f"SELECT value FROM {META_TABLE} WHERE key = 'clip_model'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


class TextPreload:
    """The torch-free text encoder, loading on a thread; :meth:`result` waits for it."""

    def __init__(self, choice: ModelChoice) -> None:
        self.choice = choice
        self.model_id = choice.clip_model
        self._encoder: OpenVinoTextEncoder | None = None
        self._thread = threading.Thread(target=self._load, name="objsearch-text", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            encoder = self.choice.text_encoder()
            if encoder is not None:
                encoder.fingerprint()  # the identity check's vector, and the first inference
        except Exception:  # the searcher loads the model itself and reports any problem
            encoder = None
        self._encoder = encoder

    def result(self) -> OpenVinoTextEncoder | None:
        """The encoder (None when the full model is needed), once the thread is done."""
        self._thread.join()
        return self._encoder


def preload_text_encoder(
    index_dir: str | os.PathLike[str],
    clip_model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
) -> TextPreload | None:
    """Start loading the text encoder a search of ``index_dir`` will use; None if unknown."""
    recorded = recorded_model(index_dir)
    if recorded is None:
        return None
    return TextPreload(ModelChoice(clip_model, device, precision, backend).with_model(recorded))
