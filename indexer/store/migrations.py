"""Schema migrations: one step per version, applied in order when an older index opens.

``STEPS[n]`` upgrades a version-``n`` database to ``n + 1`` inside one transaction that also
records the new version, so a crash mid-upgrade leaves the database at a whole version.
Version 1 is the first schema: there is nothing to upgrade yet.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from ..errors import StoreError
from .schema import SCHEMA_VERSION, Meta

MigrationStep = Callable[[Session], None]

STEPS: dict[int, MigrationStep] = {}


def upgrade(session: Callable[[], Session], version: int) -> int:
    """Bring a database at ``version`` up to :data:`SCHEMA_VERSION`; returns the new version."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"This index was written by a newer objsearch (schema {version}, this version "
            f"reads up to {SCHEMA_VERSION}). Upgrade objsearch."
        )
    while version < SCHEMA_VERSION:
        step = STEPS.get(version)
        if step is None:
            raise StoreError(f"This objsearch cannot upgrade an index of schema {version}.")
        with session() as s, s.begin():
            step(s)
            s.merge(Meta(key="schema_version", value=str(version + 1)))
        version += 1
    return version
