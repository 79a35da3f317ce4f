"""The writer lock (one writing process, named when refused) and the short vectors lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.errors import IndexLockedError, StoreError
from indexer.store.lock import (
    acquire_writer_lock,
    release_writer_lock,
    vectors_lock,
    writer_lock,
)
from indexer.store.schema import LOCK_NAME
from tests.fixtures import child_env
from tests.fixtures.mounts import read_only

HOLD = """
import sys, time
from indexer.store.lock import acquire_writer_lock
acquire_writer_lock(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    env = child_env()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(IndexLockedError, match=f"locked by PID {holder.pid}"):
            acquire_writer_lock(str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    fd = acquire_writer_lock(str(tmp_path))  # the lock died with its process
    assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())
    release_writer_lock(fd)
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_writer_lock_is_released_when_its_block_ends(tmp_path: Path) -> None:
    with writer_lock(str(tmp_path)), pytest.raises(IndexLockedError):
        acquire_writer_lock(str(tmp_path))  # another open file: flock refuses it
    release_writer_lock(acquire_writer_lock(str(tmp_path)))


def test_vectors_lock_does_not_wait_when_asked_not_to(tmp_path: Path) -> None:
    with vectors_lock(str(tmp_path), wait=True) as held:
        assert held
        with vectors_lock(str(tmp_path), wait=False) as second:
            assert second is False
    with vectors_lock(str(tmp_path), wait=False) as again:
        assert again


def test_a_read_only_folder_is_a_store_error_not_a_traceback(tmp_path: Path) -> None:
    with read_only(tmp_path):
        with pytest.raises(StoreError, match="read-only"):
            acquire_writer_lock(str(tmp_path))
        with vectors_lock(str(tmp_path), wait=False) as held:
            assert held is False  # a reader's write-back simply does not happen
