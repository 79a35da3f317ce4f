"""The scan: photos found by extension, problems as records, folders walked once, in order."""

from __future__ import annotations

import os
from pathlib import Path

from indexer.media.scan import (
    ScannedFile,
    ScanProblem,
    absolute,
    is_supported,
    printable_path,
    scan,
    stat_file,
    under,
)


def test_photos_are_found_by_extension_in_sorted_order_skipping_hidden(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "notes.txt", ".hidden.jpg", "sub/c.heic", ".cache/d.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 3)
    found = list(scan([tmp_path]))
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in found] == [
        "a.png",
        "b.JPG",
        "sub/c.heic",
    ]
    assert all(isinstance(f, ScannedFile) and f.size == 3 for f in found)
    assert is_supported("x.Tiff") and not is_supported("x.raw")


def test_problems_come_back_as_records(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "doc.txt").write_text("x")
    reasons = {Path(p.path).name: p.reason for p in scan([tmp_path]) if isinstance(p, ScanProblem)}
    assert reasons["broken.jpg"].startswith("broken symlink")
    assert reasons["loop.jpg"].startswith("symlink loop")
    assert reasons["pipe.jpg"] == "not a regular file"
    given = list(scan([tmp_path / "doc.txt", tmp_path / "missing"]))
    assert [p.reason for p in given if isinstance(p, ScanProblem)] == [
        "not a supported photo format (by its extension)",
        "no such file or folder",
    ]


def test_a_symlinked_folder_loop_is_walked_once(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    (tmp_path / "photos" / "again").symlink_to(tmp_path / "photos")
    assert [f.path for f in scan([tmp_path / "photos"])] == [str(tmp_path / "photos" / "a.jpg")]


def test_a_name_that_is_not_utf8_is_a_problem_with_a_printable_path(tmp_path: Path) -> None:
    raw = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg")
    Path(raw).write_bytes(b"x")
    result = stat_file(raw)
    assert isinstance(result, ScanProblem) and "not valid UTF-8" in result.reason
    assert result.path == printable_path(raw) and result.path.endswith("caf\\xe9.jpg")


def test_under_matches_whole_path_parts_only() -> None:
    assert under("/photos/2024/a.jpg", ["/photos"]) and under("/photos", ["/photos"])
    assert not under("/photos-old/a.jpg", ["/photos"])
    assert absolute(["~/x"]) == [os.path.expanduser("~/x")]
