"""The batch transaction: replacements, moves, touches, failures and tombstones."""

from __future__ import annotations

from pathlib import Path

from indexer.store import FailureRecord, PhotoMove, PhotoTouch, Store
from tests.fixtures.store_records import random_photo, random_store


def test_a_photo_at_a_known_path_replaces_the_old_one_and_its_failure(tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        store.commit_batch([], [FailureRecord("/photos/a.jpg", "decode", "truncated")])
        first = store.commit_batch([random_photo("a", 1)])
        second = store.commit_batch([random_photo("a", 2)])
        assert sorted(second.removed_ids.tolist()) == sorted(first.added_ids.tolist())
        assert store.failures() == [] and store.counts().photos == 1
        assert second.generation == first.generation + 1 == 3


def test_failures_are_merged_by_path(tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        store.commit_batch([], [FailureRecord("/x.jpg", "decode", "first")])
        store.commit_batch([], [FailureRecord("/x.jpg", "model", "second")])
        rows = [(f.path, f.stage, f.reason) for f in store.failures()]
    assert rows == [("/x.jpg", "model", "second")]


def test_moves_and_touches_change_paths_and_stats_only(tmp_path: Path) -> None:
    with Store(tmp_path, create=True) as store:
        store.commit_batch([random_photo("a", 1), random_photo("b", 2)])
        ids = {p: s.id for p, s in store.photo_states().items()}
        regions_before = store.counts().regions
        store.commit_batch([], [FailureRecord("/photos/moved.jpg", "scan", "vanished")])
        store.commit_batch(
            [],
            moves=[PhotoMove(ids["/photos/a.jpg"], "/photos/moved.jpg", 7, 77)],
            touches=[PhotoTouch(ids["/photos/b.jpg"], 8, 88)],
        )
        states = store.photo_states()
        assert store.counts().regions == regions_before and store.failures() == []
    assert states["/photos/moved.jpg"].id == ids["/photos/a.jpg"]
    assert (states["/photos/moved.jpg"].size, states["/photos/moved.jpg"].mtime_ns) == (7, 77)
    assert (states["/photos/b.jpg"].size, states["/photos/b.jpg"].mtime_ns) == (8, 88)


def test_only_deletions_the_faiss_file_holds_become_tombstones(tmp_path: Path) -> None:
    index_dir = random_store(tmp_path / "index", photos=2)  # regions 1-4 in the file
    with Store(index_dir) as store:
        late = store.commit_batch([random_photo("late", 9)]).added_ids  # the delta: 5, 6
        states = store.photo_states()
        store.commit_batch(
            [], remove_photo_ids=[states["/photos/p0.jpg"].id, states["/photos/late.jpg"].id]
        )
        status = store.vector_status()
    assert late.tolist() == [5, 6]
    assert (status.tombstones, status.delta, status.regions) == (2, 0, 2)


def test_stale_failures_are_cleared_and_this_runs_kept(tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "here.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"x")
    with Store(tmp_path / "index", create=True) as store:
        store.commit_batch(
            [],
            [
                FailureRecord(str(tmp_path / "gone.jpg"), "decode", "bad"),
                FailureRecord(str(photo), "decode", "bad"),
                FailureRecord(str(tmp_path / "mine.jpg"), "decode", "bad"),
            ],
        )
        assert store.clear_stale_failures(keep=[str(tmp_path / "mine.jpg")]) == 1
        left = sorted(f.path for f in store.failures())
    assert left == sorted([str(photo), str(tmp_path / "mine.jpg")])
