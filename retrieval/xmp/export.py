"""``objsearch export --xmp``: one XMP sidecar per indexed photo, merged, written atomically.

For each photo the filters keep: read the sidecar if there is one, merge objsearch's entries
into it (or take them out, with ``remove``), and write it only when its content changed, so
a re-run over an unchanged index touches no file and sync tools stay quiet. A sidecar that
cannot be read or parsed is left exactly as it is and counted as failed, as is every write
that fails (read-only folder, full disk): the old sidecar stays in place. Photos are never
opened for writing.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from indexer.errors import UsageError
from indexer.store import Photo, Region, Store, TextRegion
from retrieval.export import exported_photos, selected_photo_ids
from retrieval.search.filters import SearchFilters

from . import packet as xmp
from .entries import sidecar_entries
from .naming import APPEND, NAMINGS, sidecar_path
from .write import WRITERS, Writer, os_reason, write_atomic

Progress = Callable[[int, int], None]
WRITTEN, UPDATED, REMOVED, UNCHANGED = "written", "updated", "removed", "unchanged"


@dataclass
class SidecarSummary:
    """What an XMP export did: sidecars written (new), updated, removed, unchanged, failed."""

    written: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return len(self.failed)

    @property
    def photos(self) -> int:
        return self.written + self.updated + self.removed + self.unchanged + self.failures

    @property
    def per_second(self) -> float:
        return self.photos / self.seconds if self.seconds > 0 else 0.0

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def to_dict(self) -> dict[str, object]:
        return {
            "written": self.written,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failures": self.failures,
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Job:
    """What to do with one sidecar once it is planned."""

    path: str
    outcome: str
    data: bytes | None = None  # None with REMOVED: delete the file
    mode: int | None = None

    def run(self) -> None:
        if self.data is None:
            os.unlink(self.path)
        else:
            write_atomic(self.path, self.data, self.mode)


class _Failed(Exception):
    """One photo's sidecar cannot be handled; the reason is shown in the summary."""


def _read(path: str) -> tuple[bytes | None, int | None]:
    """The sidecar's bytes and permission bits, or (None, None) when there is none."""
    try:
        with open(path, "rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            return fh.read(), mode
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise _Failed(f"cannot read the sidecar: {os_reason(exc)}") from None


def plan_sidecar(
    photo: Photo, regions: list[Region | TextRegion], path: str, *, remove: bool
) -> _Job:
    """Decide one sidecar's fate: unchanged, or the bytes to write, or deletion."""
    raw, mode = _read(path)
    entries = None if remove else sidecar_entries(photo, regions)
    if raw is None and (entries is None or entries.empty):
        return _Job(path, UNCHANGED)  # nothing to take out, or nothing found to write
    if entries is not None and raw is not None and xmp.is_current(raw, entries):
        return _Job(path, UNCHANGED)
    if raw is None and not os.path.exists(photo.path):
        raise _Failed("the photo is gone (objsearch index prunes it)")
    try:
        packet = xmp.new_packet() if raw is None else xmp.parse(raw)
        created = packet.created_by_objsearch
        if entries is None:
            xmp.strip(packet)
        else:
            xmp.merge(packet, entries, created=raw is None)
        if not packet.changed:
            return _Job(path, UNCHANGED)
        if remove and created and packet.empty:
            return _Job(path, REMOVED)
        return _Job(path, WRITTEN if raw is None else UPDATED, xmp.serialize(packet), mode)
    except xmp.DamagedSidecar as exc:
        raise _Failed(f"{exc}; left untouched") from None


def export_sidecars(
    store: Store,
    *,
    filters: SearchFilters | None = None,
    naming: str = APPEND,
    remove: bool = False,
    progress: Progress | None = None,
    workers: int = WRITERS,
) -> SidecarSummary:
    """Write (or, with ``remove``, clean) the sidecar of every photo the filters keep."""
    if naming not in NAMINGS:
        raise UsageError(f"--xmp-name {naming}: use {' or '.join(NAMINGS)}.")
    started = time.perf_counter()
    summary = SidecarSummary()
    keep = selected_photo_ids(store, filters)
    total = len(keep) if keep is not None else store.counts().photos
    claimed: dict[str, str] = {}
    done = 0

    def finished(job: object, error: OSError | None) -> None:
        assert isinstance(job, _Job)
        if error is None:
            summary.count(job.outcome)
        else:
            summary.failed.append((job.path, f"cannot write the sidecar: {os_reason(error)}"))

    with Writer(finished, workers) as writer:
        for photo, regions, texts in exported_photos(store, filters):
            path = sidecar_path(photo.path, naming)
            try:
                if path in claimed:  # --xmp-name replace: photo.jpg and photo.cr2 -> photo.xmp
                    if not remove:
                        raise _Failed(f"it is also the sidecar of {claimed[path]}; kept that one")
                    job = _Job(path, UNCHANGED)  # cleaned already for the first photo
                else:
                    if naming != APPEND:  # appended names are unique like the photo paths
                        claimed[path] = photo.path
                    job = plan_sidecar(photo, [*regions, *texts], path, remove=remove)
            except _Failed as exc:
                summary.failed.append((path, str(exc)))
            else:
                if job.outcome == UNCHANGED:
                    summary.count(UNCHANGED)
                else:
                    writer.submit(job, job.run)
            done += 1
            if progress is not None:
                progress(done, total)
    summary.seconds = time.perf_counter() - started
    return summary
