"""Whether an index folder can be written, asked before anything is written to it.

A run that would fail on the folder fails here in milliseconds, before seconds of model
loading; a read-only folder is still searchable, so these checks never stop a reader.
"""

from __future__ import annotations

import os

from ..errors import StoreError
from ..settings import expand_path


def read_only_filesystem(path: str) -> bool:
    """True when ``path`` lies on a file system mounted read-only (no one can write it)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def writable_folder(path: str) -> bool:
    """True when this process may create files in ``path`` (mode and mount both allow it)."""
    return os.access(path, os.W_OK) and not read_only_filesystem(path)


def check_creatable(index_dir: str) -> None:
    """Raise :class:`StoreError` unless an index can be written at ``index_dir``.

    Cheap, and done before any model loads: a run that would fail on the folder should
    fail in milliseconds, not after seconds of model loading.
    """
    target = expand_path(index_dir)
    existing = target
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise StoreError(f"Cannot create index folder {target}: {existing} is not a folder.")
    if not writable_folder(existing):
        raise StoreError(not_writable(target, existing))


def not_writable(index_dir: str, folder: str) -> str:
    """The message for an index at ``index_dir`` that cannot be written because of ``folder``."""
    what = "read-only" if read_only_filesystem(folder) else "not writable"
    where = "The index folder" if folder == index_dir else f"Cannot create {index_dir}:"
    return (
        f"{where} {folder} is {what}: index into a writable folder "
        "(a read-only index can still be searched)."
    )
