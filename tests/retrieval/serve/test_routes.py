"""The query and photo routes: ids are opaque positive integers (see test_responses for shapes)."""

from __future__ import annotations

import pytest

from retrieval.serve.photos import NotIndexed
from retrieval.serve.routes import MAX_ID, parse_id


@pytest.mark.parametrize("raw", ["1", "42", str(MAX_ID)])
def test_ids_are_positive_integers(raw: str) -> None:
    assert parse_id(raw) == int(raw)


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "x", "١٢", str(MAX_ID + 1), ""])
def test_anything_else_names_nothing(raw: str) -> None:
    with pytest.raises(NotIndexed):
        parse_id(raw)
