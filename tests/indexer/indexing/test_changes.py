"""ChangeBatcher and batch_roots: which paths a batch holds, and when, over real files.

Times are passed in (seconds on a made-up clock), so the quiet period and the maximum wait
are checked without sleeping; the files are real, so the growing-file check stats them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from indexer.indexing.changes import ChangeBatcher, batch_roots, known_dirs
from tests.fixtures import write_photo

QUIET, MAX_WAIT, SETTLE = 0.5, 2.0, 10.0


def batcher(folder: Path, **kwargs: object) -> ChangeBatcher:
    options = {"quiet_s": QUIET, "max_wait_s": MAX_WAIT, "settle_limit_s": SETTLE} | kwargs
    changes = ChangeBatcher([str(folder)], **options)  # type: ignore[arg-type]
    changes.start()
    return changes


def test_a_burst_is_one_batch_once_quiet(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    paths = [folder / f"p{i:03d}.jpg" for i in range(50)]
    for i, path in enumerate(paths):
        write_photo(path, seed=i)
    changes = batcher(folder)
    for i, path in enumerate(paths):  # several events per file, as a copy gives
        changes.add(str(path), 0.01 * i)
        changes.add(str(path), 0.01 * i + 0.005)
    assert changes.pending == 50
    last = 0.01 * 49 + 0.005
    assert not changes.due(last + QUIET / 2)
    assert changes.take(last + QUIET / 2) == []
    assert changes.take(last + QUIET) == sorted(str(p) for p in paths)
    assert changes.pending == 0 and not changes.due(last + 10)


def test_a_steady_stream_is_cut_at_the_maximum_wait(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    changes = batcher(folder)
    batches, t = [], 0.0
    for i in range(100):  # one new photo every 0.1 s: never quiet for 0.5 s
        write_photo(folder / f"p{i:03d}.jpg", seed=i)
        changes.add(str(folder / f"p{i:03d}.jpg"), t)
        t += 0.1
        if taken := changes.take(t):
            batches.append(taken)
    t += QUIET
    batches.append(changes.take(t))
    assert sum(len(b) for b in batches) == 100
    assert len(set().union(*batches)) == 100
    assert 4 <= len(batches) <= 100 * 0.1 / MAX_WAIT + 2
    # A cut batch leaves the photos still getting events for the next one.
    assert all(len(b) >= 10 for b in batches[:-1])


def test_a_growing_file_waits_until_its_size_stops_changing(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    source = tmp_path / "full.jpg"
    write_photo(source, size=(400, 300))
    data = source.read_bytes()
    growing = folder / "growing.jpg"
    growing.write_bytes(data[: len(data) // 3])
    changes = batcher(folder)
    changes.add(str(growing), 0.0)
    with open(growing, "ab") as fh:  # written after its last event was seen
        fh.write(data[len(data) // 3 : 2 * len(data) // 3])
    assert changes.take(QUIET) == []  # still changing: another quiet period
    assert changes.pending == 1
    with open(growing, "ab") as fh:
        fh.write(data[2 * len(data) // 3 :])
    assert changes.take(2 * QUIET) == []
    assert changes.take(3 * QUIET) == [str(growing)]
    assert growing.read_bytes() == data


def test_a_file_that_never_settles_is_taken_at_the_limit(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    path = folder / "log.jpg"
    write_photo(path)
    changes = batcher(folder, settle_limit_s=2.0)
    changes.add(str(path), 0.0)
    t, taken = 0.0, list[str]()
    while not taken and t < 10:
        with open(path, "ab") as fh:
            fh.write(b"x")
        t += QUIET
        taken = changes.take(t)
    assert taken == [str(path)] and 2.0 <= t <= 2.0 + 2 * QUIET


def test_only_photos_folders_and_known_folders_count(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg")
    write_photo(folder / "old" / "b.png")
    write_photo(folder / ".hidden" / "c.jpg")
    (folder / "notes.txt").write_text("x")
    index = folder / "my-index"
    index.mkdir()
    (index / "objsearch.db").write_text("x")
    changes = ChangeBatcher([str(folder)], ignore=[str(index)])
    changes.start()
    assert changes.add(str(folder / "a.jpg"), 0.0)
    assert changes.add(str(folder / "gone.heic"), 0.0)  # a deleted photo
    assert not changes.add(str(folder / "notes.txt"), 0.0)
    assert not changes.add(str(folder / ".hidden" / "c.jpg"), 0.0)
    assert not changes.add(str(index / "objsearch.db"), 0.0)  # the index's own writes
    assert not changes.add(str(tmp_path / "elsewhere.jpg"), 0.0)
    assert not changes.add(str(folder / "old"), 0.0, modified=True)  # its attributes
    shutil.rmtree(folder / "old")
    assert changes.add(str(folder / "old"), 0.0)  # a known folder, deleted
    assert not changes.add(str(folder / "never-a-folder"), 0.0)
    assert changes.pending == 3


def test_known_folders_follow_the_batches(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "2023" / "july" / "a.jpg")
    changes = batcher(folder)
    assert changes.dirs == known_dirs([str(folder)])
    assert str(folder / "2023" / "july") in changes.dirs
    write_photo(folder / "2024" / "may" / "b.jpg")  # a folder moved in
    changes.add(str(folder / "2024"), 0.0)
    assert changes.take(QUIET) == [str(folder / "2024")]
    assert str(folder / "2024" / "may") in changes.dirs
    shutil.rmtree(folder / "2023")
    assert changes.add(str(folder / "2023"), 1.0)
    assert changes.take(1.0 + QUIET) == [str(folder / "2023")]
    assert not any(d.startswith(str(folder / "2023")) for d in changes.dirs)


def test_roots_scan_deleted_paths_through_their_nearest_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_photo(a / "x" / "new.jpg")
    write_photo(a / "kept.jpg")
    write_photo(b / "moved.jpg")
    paths = [
        str(a / "x" / "new.jpg"),
        str(a / "x" / "y" / "z" / "deleted.jpg"),  # its folders went too
        str(b / "moved.jpg"),
        str(b / "old" / "moved.jpg"),
        str(tmp_path / "elsewhere.jpg"),  # not under a watched folder
    ]
    roots, missing = batch_roots(paths, [str(a), str(b)])
    # a/x covers a/x/new.jpg; b covers b/moved.jpg and the deleted b/old.
    assert roots == [str(a / "x"), str(b)]
    assert missing == []


def test_a_watched_folder_that_is_gone_is_reported_not_scanned(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_photo(a / "p.jpg")
    roots, missing = batch_roots([str(a / "p.jpg"), str(b / "q.jpg")], [str(a), str(b)])
    assert roots == [str(a / "p.jpg")] and missing == [str(b)]
    os.remove(a / "p.jpg")
    assert batch_roots([str(a / "p.jpg")], [str(a)]) == ([str(a)], [])
