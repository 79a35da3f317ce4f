"""Case and accent folding for the text read in photos, shared by the store and the search.

The stored folded copy and the folded query must agree exactly, so both sides call
:func:`fold`: Unicode compatibility decomposition, combining marks dropped, then full case
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


def whole_word(word: str, folded_text: str) -> bool:
    """True when ``word`` stands alone in ``folded_text`` (not inside a longer word)."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", folded_text) is not None
