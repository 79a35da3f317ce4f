"""Errors that objsearch reports to people, not as tracebacks.

Every failure a user can cause or fix (a missing model, a locked or corrupt index, a bad
query) is raised as an :class:`ObjsearchError`, whose message says what happened and what to
do. The CLI prints the message and exits non-zero; apps that embed objsearch catch the class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class ObjsearchError(Exception):
    """Base class for errors with a message fit to show a person."""

    exit_code = 1


class ModelLoadError(ObjsearchError):
    """A model (CLIP or detector) could not be loaded from a hub id or a local path."""

    exit_code = 3


class StoreError(ObjsearchError):
    """The index folder is unusable: missing, corrupt, read-only, full, or from another model."""

    exit_code = 4


class CorruptIndexError(StoreError):
    """The index database is damaged (SQLite reports corruption); ``doctor`` can salvage it."""


class IndexLockedError(StoreError):
    """Another process is writing to the index."""

    exit_code = 5


class UsageError(ObjsearchError):
    """A command was given arguments or paths it cannot use (a misspelled folder...)."""

    exit_code = 2


class QueryError(UsageError, ValueError):
    """A search query is malformed (no text and no image, an unreadable query image...).

    A :class:`UsageError` like every other mistake in what was asked for (exit 2, HTTP
    400), and a ``ValueError``, so code that validates arguments the Python way catches it.
    """


@dataclass(frozen=True)
class CarriedError:
    """An :class:`ObjsearchError` as plain data, to cross a process boundary (a Ray actor's
    result rows hold plain values) and be raised again, as the same class, on the other side."""

    kind: str
    message: str

    @classmethod
    def of(cls, exc: ObjsearchError) -> CarriedError:
        return cls(type(exc).__name__, str(exc))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "message": self.message})

    @classmethod
    def from_json(cls, text: str) -> CarriedError:
        data = json.loads(text)
        return cls(str(data["kind"]), str(data["message"]))

    def error(self) -> ObjsearchError:
        """The exception again: its own class when it is one of ours, else the base class."""
        classes = {c.__name__: c for c in _subclasses(ObjsearchError)}
        return classes.get(self.kind, ObjsearchError)(self.message)


def _subclasses(cls: type[ObjsearchError]) -> list[type[ObjsearchError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


# Where a model-load error sends people without internet access on the machine.
NO_INTERNET_HINT = (
    'No internet on this machine? See "No internet?" in the objsearch README '
    "(objsearch models save makes offline copies)."
)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can run to pages).

    A wrapped driver error (SQLAlchemy's ``.orig``) speaks for itself: its own message is
    the useful one.
    """
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
