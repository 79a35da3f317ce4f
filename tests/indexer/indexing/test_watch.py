"""The Watcher over real folders: watchfiles events, the real Indexer, SQLite and FAISS.

Each test runs the watcher on a thread of the test process with the tiny models injected,
changes files the way people and programs do (copy, write in chunks, move, delete), and
polls the store until the change shows. The deadlines are generous limits for slow CI
machines, not timings (benchmarks/watch_latency.py measures those).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.errors import StoreError
from indexer.indexing.watch import Watcher, recorded_indexer
from indexer.models.clip import ClipEmbedder
from indexer.store import Store
from indexer.store.doctor import check
from indexer.store.lock import acquire_writer_lock, release_writer_lock
from tests.fixtures import Models, make_indexer, write_photo
from tests.fixtures import wait_for as until
from tests.model_factory import make_tiny_clip

DEADLINE_S = 30.0
QUIET_S = 0.3
STATUS_KEYS = {"folders", "state", "done", "total", "pending", "last_batch_at", "last_error"}


def wait_for(condition: Callable[[], object], watcher: Watcher, what: str) -> None:
    until(condition, what, lambda: f"watcher: {watcher.snapshot()}", DEADLINE_S)


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[Watcher]:
    """Run ``watcher`` on a thread until the block ends; its catch-up is done on entry."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            watcher.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.batches or errors, watcher, "the catch-up")
        yield watcher
    finally:
        watcher.stop()
        thread.join(60)
        assert not thread.is_alive(), "the watcher did not stop"
        assert not errors, errors


def new_watcher(models: Models, index_dir: Path, folder: Path, **kwargs: object) -> Watcher:
    indexer = make_indexer(models, index_dir, batch_size=kwargs.pop("batch_size", None))
    return Watcher(index_dir, [folder], indexer=indexer, quiet_s=QUIET_S, **kwargs)  # type: ignore[arg-type]


def states(index_dir: Path) -> dict:
    with Store(index_dir) as store:
        return store.photo_states()


def region_ids(index_dir: Path, path: Path) -> set[int]:
    with Store(index_dir) as store:
        state = store.photo_states([str(path)])[str(path)]
        _, regions = store.photo_with_regions(state.id)  # type: ignore[misc]
        return {r.id for r in regions}


@pytest.fixture
def indexed(tmp_path: Path, models: Models) -> tuple[Path, Path]:
    """A folder of two photos and its index, built before any watcher runs."""
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg", seed=1)
    write_photo(folder / "b.png", seed=2)
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([folder])
    return folder, index_dir


def test_new_moved_changed_and_deleted_photos_follow_the_folder(
    indexed: tuple[Path, Path], models: Models, tmp_path: Path
) -> None:
    folder, index_dir = indexed
    write_photo(folder / "missed.jpg", seed=3)  # changed while nobody watched
    with watching(new_watcher(models, index_dir, folder)) as watcher:
        assert watcher.batches[0].catch_up and watcher.batches[0].added == 1
        snapshot = watcher.snapshot()
        assert set(snapshot) == STATUS_KEYS and snapshot["folders"] == [str(folder)]

        write_photo(tmp_path / "staging" / "new.jpg", seed=4)
        shutil.copy(tmp_path / "staging" / "new.jpg", folder / "new.jpg")
        wait_for(lambda: str(folder / "new.jpg") in states(index_dir), watcher, "the copy")
        regions = region_ids(index_dir, folder / "new.jpg")
        assert len(regions) > 1  # the whole photo and its objects

        (folder / "sub").mkdir()
        os.rename(folder / "new.jpg", folder / "sub" / "new.jpg")
        wait_for(lambda: str(folder / "sub" / "new.jpg") in states(index_dir), watcher, "move")
        assert str(folder / "new.jpg") not in states(index_dir)
        assert region_ids(index_dir, folder / "sub" / "new.jpg") == regions

        write_photo(folder / "a.jpg", seed=5)  # new bytes under a known name
        before = states(index_dir)[str(folder / "a.jpg")].content_hash
        wait_for(
            lambda: states(index_dir)[str(folder / "a.jpg")].content_hash != before, watcher, "edit"
        )
        os.remove(folder / "b.png")
        wait_for(lambda: str(folder / "b.png") not in states(index_dir), watcher, "the delete")
        wait_for(lambda: watcher.snapshot()["state"] == "idle", watcher, "idle")

    batches = [b for b in watcher.batches if not b.catch_up]
    totals = {k: sum(getattr(b, k) for b in batches) for k in ("added", "changed", "moved")}
    assert totals == {"added": 1, "changed": 1, "moved": 1}
    assert sum(b.deleted for b in batches) == 1 and not any(b.failed for b in batches)
    final = watcher.snapshot()
    assert final["last_batch_at"] and final["last_error"] is None and final["pending"] == 0
    with Store(index_dir) as store:
        assert check(store).consistent


def test_a_burst_of_200_photos_is_a_few_batches(
    indexed: tuple[Path, Path], models: Models, tmp_path: Path
) -> None:
    folder, index_dir = indexed
    staging = tmp_path / "staging"
    for i in range(200):  # small variants: four sizes, every one its own bytes
        write_photo(staging / f"burst_{i:03d}.jpg", size=(64 + 8 * (i % 4), 48), seed=100 + i)
    with watching(new_watcher(models, index_dir, folder)) as watcher:
        for photo in sorted(staging.iterdir()):
            shutil.copy(photo, folder / photo.name)
        wait_for(lambda: len(states(index_dir)) == 202, watcher, "the burst")
    batches = [b for b in watcher.batches if not b.catch_up]
    assert sum(b.added for b in batches) == 200 and not any(b.failed for b in batches)
    assert len(batches) <= 20, [b.describe() for b in batches]


def test_half_written_and_bad_files_do_not_stop_the_watcher(
    indexed: tuple[Path, Path], models: Models, tmp_path: Path
) -> None:
    folder, index_dir = indexed
    write_photo(tmp_path / "big.jpg", size=(640, 480), seed=7)
    data = (tmp_path / "big.jpg").read_bytes()
    with watching(new_watcher(models, index_dir, folder)) as watcher:
        with open(folder / "slow.jpg", "wb") as fh:  # a slow copy: pauses under the quiet period
            for start in range(0, len(data), len(data) // 8 + 1):
                fh.write(data[start : start + len(data) // 8 + 1])
                fh.flush()
                time.sleep(QUIET_S / 3)
        (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])  # stays bad
        wait_for(lambda: str(folder / "slow.jpg") in states(index_dir), watcher, "slow copy")
        wait_for(lambda: watcher.snapshot()["last_error"], watcher, "the bad file's failure")
        assert "truncated.jpg" in watcher.snapshot()["last_error"]
        write_photo(folder / "after.jpg", seed=8)  # the watcher goes on
        wait_for(lambda: str(folder / "after.jpg") in states(index_dir), watcher, "next photo")
    with Store(index_dir) as store:
        assert [f.path for f in store.failures()] == [str(folder / "truncated.jpg")]
    assert sum(b.failed for b in watcher.batches) == 1


def test_stop_ends_a_batch_at_a_commit_and_the_next_start_catches_up(
    indexed: tuple[Path, Path], models: Models, tmp_path: Path
) -> None:
    folder, index_dir = indexed
    for i in range(24):
        write_photo(tmp_path / "staging" / f"s{i:02d}.jpg", seed=200 + i)
    stopped: list[int] = []

    def stop_after_first_commit(done: int, total: int) -> None:
        if done and not stopped:
            stopped.append(done)
            watcher.stop()

    watcher = new_watcher(
        models, index_dir, folder, batch_size=4, on_progress=stop_after_first_commit
    )
    thread = threading.Thread(target=watcher.run)
    thread.start()
    wait_for(lambda: watcher.batches, watcher, "the catch-up")
    for photo in sorted((tmp_path / "staging").iterdir()):
        shutil.copy(photo, folder / photo.name)
    thread.join(DEADLINE_S * 2)
    assert not thread.is_alive()
    assert stopped and "stop" in (watcher.batches[-1].error or "")
    kept = len(states(index_dir))
    assert 2 + stopped[0] <= kept < 26  # the commits before the stop, not the whole batch
    with Store(index_dir) as store:
        assert check(store).consistent

    with watching(new_watcher(models, index_dir, folder)) as again:
        assert again.batches[0].catch_up and again.batches[0].added == 26 - kept
    assert len(states(index_dir)) == 26


def test_a_locked_index_is_retried_until_the_other_writer_is_done(
    indexed: tuple[Path, Path], models: Models
) -> None:
    folder, index_dir = indexed
    with watching(new_watcher(models, index_dir, folder)) as watcher:
        fd = acquire_writer_lock(str(index_dir))  # another writer
        try:
            write_photo(folder / "waiting.jpg", seed=9)
            wait_for(lambda: "locked" in (watcher.snapshot()["last_error"] or ""), watcher, "lock")
            assert watcher.snapshot()["pending"] == 1
        finally:
            release_writer_lock(fd)
        wait_for(lambda: str(folder / "waiting.jpg") in states(index_dir), watcher, "the retry")


def test_the_index_records_choose_the_models(
    indexed: tuple[Path, Path], models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, index_dir = indexed
    monkeypatch.delenv("OBJSEARCH_CLIP_MODEL", raising=False)
    monkeypatch.delenv("OBJSEARCH_DETECTOR", raising=False)
    monkeypatch.delenv("OBJSEARCH_OCR", raising=False)
    chosen = recorded_indexer(str(index_dir))
    assert chosen.clip_model == str(models.clip_dir)
    assert chosen.detector_weights == str(models.yolo_path) and chosen.detect_objects
    assert not chosen.ocr
    monkeypatch.setenv("OBJSEARCH_DETECTOR", "other.pt")  # the environment still decides
    assert recorded_indexer(str(index_dir)).detector_weights == "other.pt"

    photos_only = tmp_path / "photos-only"
    make_indexer(models, photos_only, detect_objects=False).index([indexed[0]])
    assert not recorded_indexer(str(photos_only)).detect_objects


def test_a_model_other_than_the_index_s_is_refused(
    indexed: tuple[Path, Path], models: Models, tmp_path: Path
) -> None:
    folder, index_dir = indexed
    other = ClipEmbedder(str(make_tiny_clip(tmp_path / "other", seed=1)), "cpu", backend="torch")
    indexer = make_indexer(models, index_dir)
    indexer.embedder = other
    watcher = Watcher(index_dir, [folder], indexer=indexer)
    with pytest.raises(StoreError, match="not comparable"):
        watcher.run()
