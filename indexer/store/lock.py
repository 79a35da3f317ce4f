"""The index's locks: one writing process at a time, and one FAISS file swap at a time.

The writer lock is held for a whole index run. The vectors lock is held only while a FAISS
file is renamed into place and recorded in meta, by the writer or by a reader writing back
its rebuild, so the file and its record always belong together.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from ..errors import IndexLockedError
from .schema import LOCK_NAME, VECTORS_LOCK_NAME
from .write_errors import write_error


def acquire_writer_lock(index_dir: str) -> int:
    """Take the index's writer lock; returns its file descriptor.

    ``flock`` locks die with their process, so a killed indexer never leaves a stale lock.
    The holder's PID is written into the lock file so a refused writer can name it.
    """
    import fcntl

    try:
        fd = os.open(os.path.join(index_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or full folder: say so, not a traceback
        raise write_error(index_dir, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise IndexLockedError(
                f"The index {index_dir} is locked by PID {holder}, which is writing to it. "
                "Wait for it to finish (searching works meanwhile)."
            ) from None
        raise
    with contextlib.suppress(OSError):  # the PID is a courtesy; a full disk must not stop us
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    return fd


@contextlib.contextmanager
def vectors_lock(index_dir: str, *, wait: bool) -> Iterator[bool]:
    """Hold the lock that makes "put the FAISS file in place, record it in meta" one step.

    Yields False instead of waiting when ``wait`` is off and another process holds it, or
    when the lock file cannot be opened (a read-only folder).
    """
    import fcntl

    try:
        fd = os.open(os.path.join(index_dir, VECTORS_LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if wait:
            raise
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if wait:
                raise
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the flock


def release_writer_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)


@contextlib.contextmanager
def writer_lock(index_dir: str) -> Iterator[None]:
    """Hold the index's writer lock for the duration of a ``with`` block."""
    fd = acquire_writer_lock(index_dir)
    try:
        yield
    finally:
        release_writer_lock(fd)
