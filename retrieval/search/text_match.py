"""Finding the text read in photos: folded words -> matching text lines, ranked.

Each line's folded text (case and accents removed, see :mod:`indexer.textfold`) is indexed
by an FTS5 trigram table, so a word is found inside longer words (``bake`` in ``BAKERY``,
``2019`` in ``SINCE2019``) through the index rather than by scanning every line. Trigrams
need three characters: shorter words are checked on the candidate lines (or, when every
word is that short, on all lines). A line matches when it contains every word.

Ranking: lines where the words stand alone (``bakery`` in ``THE BAKERY``) come before lines
where they are only part of a longer word (``bakery`` in ``BAKERYSHOP``), then by the
recognition confidence. ``score`` is 1.0 when every word stands alone and 0.5 when none
does (in between for some). SQLite ranks (the stored lines keep their folded words between
single spaces, see :func:`indexer.textfold.searchable`), so a frequent word costs a sort
in C, and only the rows that fill the results reach Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, TextClause, case, func, literal, text

from indexer.store import TextRegion

TRIGRAM = 3


def _fts_phrase(words: Sequence[str]) -> str:
    """Words of trigram length or more as one FTS5 query: every one must appear."""
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in words)


def lines_matching(words: Sequence[str], *, photo_ids: bool = False) -> TextClause:
    """SQL selecting the ids of text lines (or of their photos) containing every word.

    ``words`` are already folded (:func:`indexer.textfold.query_words`).
    """
    long = [w for w in words if len(w) >= TRIGRAM]
    short = [w for w in words if len(w) < TRIGRAM]
    column = "photo_id" if photo_ids else "id"
    where: list[str] = []
    params: dict[str, Any] = {}
    if long:
        where.append("id IN (SELECT rowid FROM text_search WHERE text_search MATCH :fts)")
        params["fts"] = _fts_phrase(long)
    for i, word in enumerate(short):
        where.append(f"instr(folded, :short{i}) > 0")
        params[f"short{i}"] = word
    sql = f"SELECT {column} FROM text_regions WHERE " + " AND ".join(where or ["0"])
    return text(sql).bindparams(**params)


def whole_words(words: Sequence[str]) -> ColumnElement[int]:
    """SQL: how many of ``words`` stand alone in a line (its folded words are space-separated)."""
    padded = literal(" ") + TextRegion.folded + literal(" ")
    return sum(
        (case((func.instr(padded, literal(f" {w} ")) > 0, 1), else_=0) for w in words),
        start=literal(0),
    )


def text_score(whole: int, words: int) -> float:
    """1.0 when every word stands alone in the line, 0.5 when none does."""
    return 0.5 + 0.5 * whole / words
