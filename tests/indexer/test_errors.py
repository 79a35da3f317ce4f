"""The error classes: exit codes per kind of mistake, and first lines of long messages."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from indexer.errors import (
    CarriedError,
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


@pytest.mark.parametrize(
    "error",
    [
        UsageError("bad value"),
        QueryError("bad query"),
        StoreError("no index"),
        IndexLockedError("busy"),
        ModelLoadError("no model"),
        ObjsearchError("plain"),
    ],
)
def test_errors_cross_a_process_boundary_as_their_own_class(error: ObjsearchError) -> None:
    carried = CarriedError.of(error)
    again = CarriedError.from_json(carried.to_json()).error()
    assert type(again) is type(error) and str(again) == str(error)
    assert again.exit_code == error.exit_code


def test_an_unknown_kind_comes_back_as_the_base_class() -> None:
    again = CarriedError("SomethingNew", "from a newer worker").error()
    assert type(again) is ObjsearchError and str(again) == "from a newer worker"
