"""Which SQLite and file errors mean "damaged" or "cannot write here", and what to say.

Driver errors carry codes, not advice; every write path (batch commits, FAISS saves, the
store's error hook) turns them into one :class:`StoreError` message that says what to do.
"""

from __future__ import annotations

import errno
import sqlite3

from ..errors import StoreError, first_line


def is_corruption(exc: BaseException | None) -> bool:
    """True for SQLite's "database disk image is malformed" and "file is not a database"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11
    if name:
        return bool(name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")))
    return type(exc) is sqlite3.DatabaseError  # the bare class is what both codes raise


def is_write_failure(exc: BaseException | None) -> bool:
    """True for SQLite errors that mean "cannot write here": full disk, read-only, I/O."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return bool(name.startswith(("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR")))


def is_read_only(exc: BaseException) -> bool:
    """True when ``exc`` says the file system or file refuses writes."""
    low = first_line(exc).lower()
    return (
        "readonly" in low
        or "read-only" in low
        or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES)
    )


def write_error(folder: str, exc: BaseException) -> StoreError:
    """The error to show for a failed write to the index at ``folder``."""
    text = first_line(exc)
    if "full" in text.lower() or getattr(exc, "errno", None) == errno.ENOSPC:
        hint = (
            "The disk is full: free space and run the same command again; committed work is kept."
        )
    elif is_read_only(exc):
        hint = "The index folder is read-only: index into a writable folder."
    else:
        hint = "Committed work is kept; run the same command again to resume."
    return StoreError(f"Cannot write to the index at {folder} ({text}). {hint}")
