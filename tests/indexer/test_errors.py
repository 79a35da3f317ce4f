"""The error classes: exit codes per kind of mistake, and first lines of long messages."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from indexer.errors import (
    CorruptIndexError,
    IndexLockedError,
    ModelLoadError,
    ObjsearchError,
    QueryError,
    StoreError,
    UsageError,
    first_line,
)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ObjsearchError, 1),
        (UsageError, 2),
        (QueryError, 2),
        (ModelLoadError, 3),
        (StoreError, 4),
        (CorruptIndexError, 4),
        (IndexLockedError, 5),
    ],
)
def test_each_kind_of_error_has_its_exit_code(kind: type[ObjsearchError], code: int) -> None:
    assert kind("x").exit_code == code
    assert issubclass(kind, ObjsearchError)


def test_a_query_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        raise QueryError("no text and no image")


def test_first_line_of_a_long_message_and_of_a_wrapped_driver_error() -> None:
    assert first_line(RuntimeError("one\ntwo\nthree")) == "one"
    assert first_line(RuntimeError("")) == "RuntimeError"
    engine = create_engine("sqlite://")
    with pytest.raises(OperationalError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM nowhere"))
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    assert first_line(caught.value) == "no such table: nowhere"  # the driver's own words
