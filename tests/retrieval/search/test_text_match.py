"""Text-line matching: every word inside a line, through the trigram index or, for short
words, on the lines; whole words rank first."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from indexer.store import NewText, PhotoText, Store, TextRegion
from indexer.textfold import query_words
from retrieval.search.text_match import lines_matching, text_score, whole_words
from tests.fixtures.store_records import random_photo

LINES = ["THE BAKERY", "BAKERYSHOP SINCE2019", "Café Crème", "GO 24/7", "EXIT"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("text-index")
    store = Store(folder, create=True)
    store.commit_batch([random_photo("a", 1), random_photo("b", 2)])
    texts = [NewText((0.0, float(i), 4.0, i + 1.0), line, 0.9) for i, line in enumerate(LINES)]
    store.commit_batch(
        [], texts=[PhotoText(1, texts[:3], "engine"), PhotoText(2, texts[3:], "engine")]
    )
    return store


def _lines(store: Store, query: str, *, photo_ids: bool = False) -> set:
    with store.session() as s:
        found = set(s.scalars(lines_matching(query_words(query), photo_ids=photo_ids)))
        if photo_ids:
            return found
        return set(s.scalars(select(TextRegion.text).where(TextRegion.id.in_(found))))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("bakery", {"THE BAKERY", "BAKERYSHOP SINCE2019"}),  # inside a longer word too
        ("bake 2019", {"BAKERYSHOP SINCE2019"}),  # every word, in one line
        ("CAFE creme", {"Café Crème"}),  # case and accents folded
        ("go", {"GO 24/7"}),  # a word shorter than a trigram, checked on the lines
        ("24 go", {"GO 24/7"}),
        ("exit bakery", set()),  # two lines each with one word: no line has both
        ("zebra", set()),
    ],
)
def test_a_line_matches_when_it_holds_every_word(store: Store, query: str, expected: set) -> None:
    assert _lines(store, query) == expected


def test_photo_ids_name_the_photos_holding_the_lines(store: Store) -> None:
    assert _lines(store, "bakery", photo_ids=True) == {1}
    assert _lines(store, "exit", photo_ids=True) == {2}


def test_whole_words_count_the_words_standing_alone(store: Store) -> None:
    words = query_words("bakery")
    with store.session() as s:
        rows = dict(s.execute(select(TextRegion.text, whole_words(words))).all())
    assert rows["THE BAKERY"] == 1 and rows["BAKERYSHOP SINCE2019"] == 0


@pytest.mark.parametrize(("whole", "words", "score"), [(2, 2, 1.0), (0, 2, 0.5), (1, 2, 0.75)])
def test_scores_rank_whole_words_first(whole: int, words: int, score: float) -> None:
    assert text_score(whole, words) == score
