"""The index's writer lock: one writing process at a time, any number of readers."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from ..errors import IndexLockedError
from .schema import LOCK_NAME


def acquire_writer_lock(index_dir: str) -> int:
    """Take the index's writer lock; returns its file descriptor.

    ``flock`` locks die with their process, so a killed indexer never leaves a stale lock.
    The holder's PID is written into the lock file so a refused writer can name it.
    """
    import fcntl

    fd = os.open(os.path.join(index_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
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
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


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
