"""Write-error classification: driver errors become one message that says what to do."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from indexer.store.write_errors import is_corruption, is_write_failure, write_error


def sqlite_error(sql: str, db: Path) -> sqlite3.Error:
    try:
        with sqlite3.connect(db) as conn:
            conn.execute(sql)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("the statement succeeded")


def test_a_file_that_is_not_a_database_is_corruption(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(b"garbage" * 1000)
    exc = sqlite_error("SELECT * FROM sqlite_master", db)
    assert is_corruption(exc) and not is_write_failure(exc)


def test_a_read_only_database_is_a_write_failure(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    sqlite3.connect(db).execute("CREATE TABLE t (a)").connection.commit()
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.execute("INSERT INTO t VALUES (1)")
    except sqlite3.Error as exc:
        assert is_write_failure(exc) and not is_corruption(exc)
        message = str(write_error(str(tmp_path), exc))
        assert "read-only" in message and str(tmp_path) in message
    else:
        raise AssertionError("a read-only connection accepted a write")


def test_messages_say_what_to_do() -> None:
    full = str(write_error("/idx", OSError(errno.ENOSPC, "No space left on device")))
    assert "The disk is full: free space" in full
    rofs = str(write_error("/idx", OSError(errno.EROFS, "Read-only file system")))
    assert "The index folder is read-only" in rofs
    other = str(write_error("/idx", OSError(errno.EIO, "Input/output error")))
    assert "run the same command again to resume" in other
    assert not is_corruption(ValueError("x")) and not is_write_failure(None)
