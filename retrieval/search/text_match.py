"""Finding the text read in photos: folded words -> matching text lines, ranked.

Each line's folded text (case and accents removed, see :mod:`indexer.textfold`) is indexed
by an FTS5 trigram table, so a word is found inside longer words (``bake`` in ``BAKERY``,
``2019`` in ``SINCE2019``) through the index rather than by scanning every line. Trigrams
need three characters: shorter words are checked on the candidate lines (or, when every
word is that short, on all lines). A line matches when it contains every word.

Ranking: lines where the words stand alone (``bakery`` in ``THE BAKERY``) come before lines
where they are only part of a longer word (``bakery`` in ``BAKERYSHOP``), then by the
recognition confidence. ``score`` is 1.0 when every word stands alone and 0.5 when none
does (in between for some).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text

from indexer.textfold import whole_word

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


@dataclass(frozen=True)
class LineMatch:
    """A matching text line with its score (see the module docstring)."""

    line_id: int
    photo_id: int
    score: float
    confidence: float


def rank_lines(
    rows: Sequence[tuple[int, int, str, float]], words: Sequence[str]
) -> list[LineMatch]:
    """(line id, photo id, folded text, confidence) rows -> matches, best first."""
    out = []
    for line_id, photo_id, folded, confidence in rows:
        alone = sum(whole_word(w, folded) for w in words)
        score = 0.5 + 0.5 * alone / len(words)
        out.append(LineMatch(int(line_id), int(photo_id), score, float(confidence)))
    out.sort(key=lambda m: (-m.score, -m.confidence, m.line_id))
    return out
