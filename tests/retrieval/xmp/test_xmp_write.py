"""Atomic sidecar writes and the writer pool: whole files or the old ones, every result told."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from retrieval.xmp.write import Writer, os_reason, temp_path, write_atomic


def test_write_replaces_the_file_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "a.xmp"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    write_atomic(str(path), b"new contents", mode=0o640)
    assert path.read_bytes() == b"new contents"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xmp"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a.xmp"
    path.write_bytes(b"old")
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "missing-folder" / "a.xmp"), b"new")
    assert path.read_bytes() == b"old"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_temp_names_are_hidden_beside_the_file() -> None:
    name = temp_path("/photos/trip/img.jpg.xmp")
    assert os.path.dirname(name) == "/photos/trip" and os.path.basename(name).startswith(".")


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only file system")],
)
def test_reasons_are_short(code: int, reason: str) -> None:
    assert os_reason(OSError(code, os.strerror(code))) == reason


def test_the_writer_reports_every_job_on_the_callers_thread(tmp_path: Path) -> None:
    results: dict[object, OSError | None] = {}
    with Writer(lambda tag, error: results.__setitem__(tag, error), workers=4) as writer:
        for i in range(100):  # more than in flight at once: submit reports as it goes
            writer.submit(i, lambda i=i: write_atomic(str(tmp_path / f"{i}.xmp"), b"x"))
        writer.submit("bad", lambda: write_atomic(str(tmp_path / "no" / "b.xmp"), b"x"))
    assert len(results) == 101 and isinstance(results.pop("bad"), OSError)
    assert all(error is None for error in results.values())
    assert len(list(tmp_path.glob("*.xmp"))) == 100


def test_a_bug_in_a_job_is_not_swallowed(tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"), Writer(lambda *_: None) as writer:
        writer.submit("x", broken)
        writer.drain()
