"""Faults while writing sidecars: a damaged sidecar, a read-only folder, a disk that fills.

In each case the old sidecars stay exactly as they were (no half-written file, no temporary
file left behind) and every photo that could not be handled is counted as failed, with its
reason; the export itself finishes with exit code 0. The read-only folder is a read-only bind
mount and the disk a small tmpfs (see tests/fixtures/mounts.py): where ``mount`` is refused
those tests skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from retrieval.cli import app
from tests.fixtures import Models, make_indexer, write_photo
from tests.fixtures.mounts import fill, read_only, tmpfs
from tests.fixtures.sidecars import USER_SIDECAR, cli_export, read_xmp


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time."""
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_damaged_sidecar_is_left_untouched_and_counted(library: tuple[Path, Path]) -> None:
    photos, index_dir = library
    damaged = photos / "trips" / "trip0.jpg.xmp"
    damaged.write_text(USER_SIDECAR[:700], encoding="utf-8")  # cut off mid-element
    before = snapshot(photos)[str(damaged)]

    result = CliRunner().invoke(app, ["export", "--index", str(index_dir), "--xmp"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "5 sidecars written, 0 updated, 0 unchanged, 1 failed" in result.stdout
    assert "trip0.jpg.xmp" in result.stdout and "left untouched" in result.stdout
    assert snapshot(photos)[str(damaged)] == before

    summary = cli_export(index_dir, "--remove")
    assert summary["removed"] == 5 and summary["failures"] == 1
    assert snapshot(photos)[str(damaged)] == before
    assert "damaged XMP" in summary["failed"][0]["reason"]


def test_a_read_only_folder_keeps_its_sidecars_and_counts_failures(
    library: tuple[Path, Path],
) -> None:
    photos, index_dir = library
    (photos / "trips" / "trip1.jpg.xmp").write_text(USER_SIDECAR, encoding="utf-8")
    assert cli_export(index_dir)["failures"] == 0
    (photos / "trips" / "trip2.jpg.xmp").unlink()  # the next export must create it
    trips = photos / "trips"
    before = snapshot(trips)
    with read_only(trips):
        summary = cli_export(index_dir)
        assert (summary["written"], summary["unchanged"], summary["failures"]) == (0, 5, 1)
        (failure,) = summary["failed"]
        assert failure["path"] == str(trips / "trip2.jpg.xmp")
        assert "read-only" in failure["reason"]

        summary = cli_export(index_dir, "--remove")
        assert summary["removed"] == 3 and summary["failures"] == 2  # trip0, trip1
        assert all("read-only" in f["reason"] for f in summary["failed"])
        assert snapshot(trips) == before
    assert snapshot(trips) == before and not temp_files(trips)


def test_a_disk_that_fills_mid_export_keeps_old_sidecars_and_counts_failures(
    tmp_path: Path, models: Models
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        photos = disk / "photos"
        for i in range(24):
            write_photo(photos / f"p{i:02d}.png", (48, 36), seed=i)
        users = [photos / f"p{i:02d}.png.xmp" for i in (21, 22, 23)]  # handled last
        for sidecar in users:
            sidecar.write_text(USER_SIDECAR, encoding="utf-8")
        make_indexer(models, tmp_path / "index").index([photos])
        old = {str(p): p.read_bytes() for p in users}

        filler = fill(disk)
        os.truncate(filler, filler.stat().st_size - 40 * 1024)  # room for a few sidecars
        result = CliRunner().invoke(app, ["export", "--index", str(tmp_path / "index"), "--xmp"])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert "the disk is full" in result.stdout

        summary = cli_export(tmp_path / "index")  # still full: the same answer, nothing lost
        assert summary["failures"] > 0
        written = sorted(photos.glob("*.xmp"))
        assert 3 < len(written) < 24
        for sidecar in users:  # the disk filled before their turn
            assert sidecar.read_bytes() == old[str(sidecar)]
        read_xmp(*written)  # every sidecar there is whole (ExifTool reads each one)
        assert not temp_files(disk)

        filler.unlink()  # room again: the same command finishes the job
        summary = cli_export(tmp_path / "index")
        assert summary["failures"] == 0 and summary["written"] + summary["updated"] > 0
        assert len(list(photos.glob("*.xmp"))) == 24
