"""Which paths a watched folder's file events ask an index run to look at, and when.

A file-watching library reports one event per write, so copying a photo gives several and
a burst of 1,000 photos gives thousands. :class:`ChangeBatcher` collects the paths and
hands them over in batches: once no event has come for a quiet period, or at the latest
after a maximum wait while events keep coming. A file whose size or modification time
moved since its last event is still being written and waits for another quiet period, so
a half-copied photo is not indexed as a broken one (after a limit it is indexed as it is,
and a really bad file becomes a recorded failure). :func:`batch_roots` turns a batch into
the folders and files one index run scans: a deleted path is looked at through the
nearest folder that still exists, so the run's plan sees it gone (deleted, or moved when
its bytes turn up elsewhere in the batch).

Nothing here touches the store or a model: the module is the pure part of the watcher.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..media.scan import absolute, is_supported, under
from ..settings import WATCH_MAX_WAIT_S, WATCH_QUIET_S, WATCH_SETTLE_LIMIT_S

Look = tuple[int, int] | None
"""A path's (size, mtime_ns), or None when it is absent or a folder."""


def look(path: str) -> Look:
    """What a path's size and modification time are now (None: absent or a folder)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


def _hidden(path: str, root: str) -> bool:
    """True when a part of ``path`` below ``root`` is hidden (scans skip those too)."""
    rel = os.path.relpath(path, root)
    return any(part.startswith(".") for part in rel.split(os.sep) if part not in ("", "."))


def known_dirs(folders: Iterable[str], ignore: Sequence[str] = ()) -> set[str]:
    """Every visible folder under ``folders`` (themselves included), ``ignore`` left out.

    A deleted folder gets one event, for the folder: this set tells such a path from a
    deleted file that was never a photo.
    """
    found: set[str] = set()
    for folder in folders:
        for root, dirs, _ in os.walk(folder):
            dirs[:] = [
                d
                for d in dirs
                if not d.startswith(".") and not under(os.path.join(root, d), ignore)
            ]
            found.add(root)
    return found


@dataclass
class _Pending:
    first: float
    """When the path's first event since it was last handed over came (monotonic s)."""
    last: float
    """When its latest event came, or the last look that found it still changing."""
    seen: Look
    """Its size and modification time at ``last``."""


class ChangeBatcher:
    """Collects changed paths under ``folders`` and hands them over in batches.

    ``ignore`` lists folders whose events never count (the index folder, when it lies
    inside a watched folder: its own writes must not start runs). Times are the caller's
    monotonic seconds, so tests can pass their own.
    """

    def __init__(
        self,
        folders: Sequence[str],
        *,
        ignore: Sequence[str] = (),
        quiet_s: float = WATCH_QUIET_S,
        max_wait_s: float = WATCH_MAX_WAIT_S,
        settle_limit_s: float = WATCH_SETTLE_LIMIT_S,
    ) -> None:
        self.folders = absolute(folders)
        self.ignore = absolute(ignore)
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.settle_limit_s = settle_limit_s
        self.dirs: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        self._opened: float | None = None  # the collecting batch's first event

    def start(self) -> None:
        """Learn the folders there are now: call once events are being watched, so that a
        folder made meanwhile is seen either here or by its event."""
        self.dirs = known_dirs(self.folders, self.ignore)

    @property
    def pending(self) -> int:
        """Paths waiting to be handed over."""
        return len(self._pending)

    def relevant(self, path: str) -> bool:
        """Whether an event on ``path`` can change the index.

        Photos (by extension) and folders count, and so does a deleted path that was a
        known folder; other files, hidden entries and the ignored folders do not.
        """
        root = next((f for f in self.folders if under(path, [f])), None)
        if root is None or under(path, self.ignore) or _hidden(path, root):
            return False
        return is_supported(path) or os.path.isdir(path) or path in self.dirs

    def add(self, path: str, now: float, *, modified: bool = False) -> bool:
        """Note an event on ``path``; returns whether it counts.

        A folder counts when it appears or goes, not when it is ``modified`` (its
        attributes): what changes inside it has events of its own.
        """
        path = os.path.abspath(path)
        if not self.relevant(path) or (modified and os.path.isdir(path)):
            return False
        seen = look(path)
        pending = self._pending.get(path)
        if pending is None:
            self._pending[path] = _Pending(now, now, seen)
        else:
            pending.last, pending.seen = now, seen
        if self._opened is None:
            self._opened = now
        return True

    def due(self, now: float) -> bool:
        """Whether a batch should be taken: all quiet, or the maximum wait is over."""
        if not self._pending or self._opened is None:
            return False
        latest = max(p.last for p in self._pending.values())
        return now - latest >= self.quiet_s or now - self._opened >= self.max_wait_s

    def take(self, now: float) -> list[str]:
        """The paths ready for an index run (sorted); the rest stay pending.

        A path is ready once it has been quiet for the quiet period and its size and
        modification time are what its last event left (else it is still being written:
        it waits another quiet period, up to the settle limit).
        """
        if not self.due(now):
            return []
        taken: list[str] = []
        for path, item in list(self._pending.items()):
            if now - item.last < self.quiet_s:
                continue  # events still coming (a batch cut by the maximum wait)
            current = look(path)
            if current != item.seen and now - item.first < self.settle_limit_s:
                item.last, item.seen = now, current  # written since its last event
                continue
            taken.append(path)
            del self._pending[path]
        self._opened = now if self._pending else None
        self._follow_dirs(taken)
        return sorted(taken)

    def _follow_dirs(self, paths: Iterable[str]) -> None:
        """Keep :attr:`dirs` in step with folders that appeared or went."""
        for path in paths:
            if os.path.isdir(path):
                self.dirs |= known_dirs([path], self.ignore)
            elif path in self.dirs:
                self.dirs = {d for d in self.dirs if not under(d, [path])}


def batch_roots(paths: Iterable[str], folders: Sequence[str]) -> tuple[list[str], list[str]]:
    """The paths one index run scans for ``paths``, and the watched folders now missing.

    An existing path is scanned itself (a photo, or a folder moved in); a deleted one
    through its nearest existing folder, never above the watched folder it lies in, so the
    run sees it gone. A watched folder that is gone itself (an unplugged drive) is
    reported, not scanned, so its photos stay. Paths inside another root are dropped.
    """
    folders = absolute(folders)
    roots: set[str] = set()
    missing: set[str] = set()
    for path in paths:
        top = next((f for f in folders if under(path, [f])), None)
        if top is None:
            continue
        while not os.path.lexists(path) and path != top:
            path = os.path.dirname(path)
        if os.path.lexists(path):
            roots.add(path)
        else:
            missing.add(top)
    kept = [r for r in roots if not any(o != r and under(r, [o]) for o in roots)]
    return sorted(kept), sorted(missing)
