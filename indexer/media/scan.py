"""Find the photos under a folder: the first step of files -> regions -> vectors.

Scanning only stats files (no decoding), so a re-run over an unchanged collection of
100,000 photos costs one ``stat`` per file. Problems a scan can see on its own (broken
symlinks, symlink loops, unreadable folders, names that are not UTF-8) come back as
:class:`ScanProblem` records instead of exceptions, so one bad entry never stops a run.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..settings import expand_path

SUPPORTED_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
    | {".heic", ".heif", ".hif", ".avif"}
)


@dataclass(frozen=True)
class ScannedFile:
    """A candidate photo: absolute path plus the stat fields that detect change."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """A path the scan could not use, with a reason fit to show a person."""

    path: str
    reason: str


def is_supported(name: str) -> bool:
    """True when the file name has one of the photo extensions objsearch reads."""
    return os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS


def printable_path(path: str) -> str:
    """The path with undecodable bytes shown as escapes, safe to store and print."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _stat_problem(path: str, exc: OSError) -> ScanProblem:
    if exc.errno == errno.ELOOP:
        return ScanProblem(path, "symlink loop: the link points back at itself")
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return ScanProblem(path, f"broken symlink: its target {os.readlink(path)!r} is missing")
        return ScanProblem(path, "the file vanished while the folder was being scanned")
    if isinstance(exc, PermissionError):
        return ScanProblem(path, "permission denied")
    if exc.errno == errno.ENAMETOOLONG:
        return ScanProblem(path, "file name too long for this system")
    return ScanProblem(path, f"cannot stat: {exc.strerror or exc}")


def _check_name(path: str) -> str | None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8: rename the file to index it"
    return None


def stat_file(path: str) -> ScannedFile | ScanProblem:
    """Stat one file (following symlinks) into a scan record."""
    bad_name = _check_name(path)
    if bad_name:
        return ScanProblem(printable_path(path), bad_name)
    try:
        st = os.stat(path)
    except OSError as exc:
        return _stat_problem(path, exc)
    if not stat.S_ISREG(st.st_mode):
        return ScanProblem(path, "not a regular file")
    return ScannedFile(path, st.st_size, st.st_mtime_ns)


def _walk(root: str, seen_dirs: set[tuple[int, int]]) -> Iterator[ScannedFile | ScanProblem]:
    try:
        st = os.stat(root)
    except OSError as exc:
        yield _stat_problem(root, exc)
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        return  # a symlinked folder we already walked: skip, do not loop
    seen_dirs.add(key)
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield ScanProblem(printable_path(root), f"cannot list folder: {exc.strerror or exc}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden files and folders (.thumbnails, .git, index folders)
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(entry.path, seen_dirs)
        elif is_supported(entry.name):
            yield stat_file(entry.path)


def scan(paths: Iterable[str | os.PathLike[str]]) -> Iterator[ScannedFile | ScanProblem]:
    """Yield every supported photo under ``paths`` (folders are walked recursively).

    Paths are made absolute (``~`` expanded) but symlinks are not resolved, so a photo keeps the path the
    user knows it by. Hidden entries are skipped. Output is sorted within each folder so
    runs are repeatable.
    """
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        path = expand_path(raw)
        if os.path.isdir(path):
            yield from _walk(path, seen_dirs)
        elif os.path.lexists(path):
            if is_supported(path):
                yield stat_file(path)
            else:
                yield ScanProblem(path, "not a supported photo format (by its extension)")
        else:
            yield ScanProblem(printable_path(path), "no such file or folder")


def under(path: str, roots: Iterable[str]) -> bool:
    """True when ``path`` lies inside one of the (absolute) ``roots`` or is one of them."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def absolute(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Absolute forms of the given paths (``~`` expanded), in order."""
    return [expand_path(p) for p in paths]


__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ScanProblem",
    "ScannedFile",
    "absolute",
    "is_supported",
    "printable_path",
    "scan",
    "stat_file",
    "under",
]
