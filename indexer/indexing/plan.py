"""What a run must do: compare a scan of the folders with what the store already holds.

Each scanned file is unchanged (same size and mtime: nothing to read), or work (new or
changed: read it, then embed it unless its bytes turn out to be known). An unchanged file
whose photo has no metadata yet (indexed by an older schema) needs only its header read
for EXIF: no decoding, no model. Stored photos under
the scanned folders that the scan did not see are missing: moved (their bytes reappear
under a new path) or deleted.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import UsageError
from ..media.scan import ScannedFile, ScanProblem, absolute, scan, under
from ..store.records import FailureRecord, PhotoState
from .failures import STAGE_SCAN


@dataclass
class Work:
    """A scanned file that needs reading: new, or changed since the last run."""

    file: ScannedFile
    previous: PhotoState | None


@dataclass
class Plan:
    """The scan compared with the store's photo states."""

    states: dict[str, PhotoState]
    scanned: int = 0
    unchanged: int = 0
    work: list[Work] = field(default_factory=list)
    needs_metadata: list[Work] = field(default_factory=list)
    """Unchanged files whose photos lack metadata (indexed before it was recorded)."""
    seen: set[str] = field(default_factory=set)
    problems: list[FailureRecord] = field(default_factory=list)
    moved_from: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Content hash -> stored paths the scan no longer sees (move sources, else deleted)."""

    def gone(self) -> list[str]:
        """Missing paths not claimed by a move so far."""
        return [p for paths in self.moved_from.values() for p in paths]


def existing_roots(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[str]]:
    """Split the folders and files a run was given into (existing, missing), ``~`` expanded.

    A run where every one is missing is a usage error (a misspelled folder): nothing is
    stored. Missing ones beside existing ones are reported, neither scanned nor pruned, so
    an unplugged drive among several folders keeps its photos.
    """
    roots = absolute(paths)
    present = [r for r in roots if os.path.lexists(r)]
    missing = [r for r in roots if not os.path.lexists(r)]
    if missing and not present:
        raise UsageError(
            f"{', '.join(missing)}: no such file or folder. Check the spelling; nothing was "
            "indexed."
        )
    return present, missing


def plan_run(roots: Iterable[str], states: dict[str, PhotoState]) -> Plan:
    """Scan ``roots`` (absolute paths) and sort every file against ``states``."""
    roots = list(roots)
    plan = Plan(states)
    for item in scan(roots):
        plan.scanned += 1
        plan.seen.add(item.path)
        if isinstance(item, ScanProblem):
            plan.problems.append(FailureRecord(item.path, STAGE_SCAN, item.reason))
            continue
        prev = states.get(item.path)
        if prev and prev.size == item.size and prev.mtime_ns == item.mtime_ns:
            plan.unchanged += 1
            if not prev.has_metadata:  # indexed before metadata was recorded
                plan.needs_metadata.append(Work(item, prev))
        else:
            plan.work.append(Work(item, prev))
    for path in states:
        if path not in plan.seen and under(path, roots):
            plan.moved_from[states[path].content_hash].append(path)
    return plan
