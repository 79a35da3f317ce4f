"""Case and accent folding for the text read in photos, shared by the store and the search.

The stored folded copy (:func:`searchable`) and the folded query (:func:`query_words`)
must agree exactly, so both call :func:`fold`: Unicode compatibility decomposition, combining marks dropped, then full case
folding (``Straße`` -> ``strasse``, ``CAFÉ`` -> ``cafe``, ``ﬁ`` -> ``fi``).
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """``text`` without case or accents, for matching (not for showing)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare.casefold())


def query_words(text: str) -> list[str]:
    """The folded words of a query, in order, without repeats (punctuation separates)."""
    return list(dict.fromkeys(_WORD.findall(fold(text))))


def searchable(text: str) -> str:
    """The stored search form of a line: folded words separated by single spaces.

    Query words never hold punctuation, so dropping it loses no match, and a word then
    stands alone exactly when it is found between spaces (a test SQLite makes in C).
    """
    return " ".join(_WORD.findall(fold(text)))
