"""Errors that name the field of a search request, for each surface to call by its own name.

The same mistake reaches objsearch through a CLI flag (``--top-k``), an HTTP parameter
(``k``) or a Python keyword (``top_k``). A :class:`FieldError` records the field and the
problem; the CLI and the HTTP layer render it with their own names (:meth:`render`), so a
person reads the name they typed, and the check itself is written once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from indexer.errors import QueryError


class FieldError(QueryError):
    """A search request's ``field`` is unusable; ``problem`` says why.

    ``problem`` may name other fields as ``{field}`` placeholders listed in ``also`` (for
    checks between two fields), which :meth:`render` replaces like the field itself.
    """

    def __init__(self, field: str, problem: str, *, also: Sequence[str] = ()) -> None:
        self.field = field
        self.problem = problem
        self.also = tuple(also)
        super().__init__(self.render({}))

    def render(self, names: Mapping[str, str]) -> str:
        """The message with every field called by ``names`` (unlisted fields keep theirs)."""
        problem = self.problem
        for other in self.also:
            problem = problem.replace("{" + other + "}", names.get(other, other))
        return f"{names.get(self.field, self.field)}: {problem}"


def rendered(exc: BaseException, names: Mapping[str, str]) -> str:
    """The message of any error, with a :class:`FieldError`'s fields called by ``names``."""
    return exc.render(names) if isinstance(exc, FieldError) else str(exc)


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Refuse a number outside ``low..high`` (or not a finite number) as field ``name``."""
    if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
        raise FieldError(name, f"must be from {low:g} to {high:g}, not {value!r}.")
