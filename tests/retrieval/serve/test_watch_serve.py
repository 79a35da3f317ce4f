"""``objsearch serve --watch``: a real server process indexes a watched folder as it changes.

The API is polled until a change shows; the deadline is a generous limit for slow CI
machines, not a timing (benchmarks/watch_latency.py measures the latency).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.store import DB_NAME, Store
from indexer.store.doctor import check
from tests.fixtures import Models, committed_photos, write_photo
from tests.fixtures import wait_for as until
from tests.fixtures.crash import assert_survived_crash
from tests.fixtures.server import API, Server, build_index, run_server

DEADLINE_S = 30.0
STATUS_KEYS = {"folders", "state", "done", "total", "pending", "last_batch_at", "last_error"}


def wait_for(condition: Callable[[], object], server: Server, what: str) -> None:
    until(condition, what, lambda: f"server said: {server.output()[-2000:]}", DEADLINE_S)


def found(server: Server, path: Path) -> bool:
    """Whether a search returns ``path`` (every photo of these small indexes is returned)."""
    hits = server.client().get(f"{API}/search", params={"q": "a photo", "k": 200, "kind": "image"})
    assert hits.status_code == 200, hits.text
    return str(path) in {h["image"] for h in hits.json()}


def watch_status(server: Server) -> dict:
    return server.client().get(f"{API}/status").json()["watch"]


def make_photos(folder: Path, count: int, seed: int) -> list[Path]:
    paths = [folder / f"p{seed}_{i:03d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        write_photo(path, size=(96 + 8 * (i % 3), 72), seed=seed + i)
    return paths


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve-watch")
    make_photos(root / "photos", 3, seed=1)
    build_index(models, root / "photos", root / "index")
    with run_server(root / "index", models.clip_dir, "--watch", str(root / "photos")) as server:
        wait_for(lambda: watch_status(server)["last_batch_at"], server, "the catch-up")
        yield server


def test_status_shows_the_watcher(watched: Server, server: Server) -> None:
    status = watch_status(watched)
    assert set(status) == STATUS_KEYS
    assert status["folders"] == [str(watched.index_dir.parent / "photos")]
    assert status["state"] in ("idle", "indexing") and status["last_error"] is None
    assert status["pending"] >= 0 and 0 <= status["done"] <= status["total"]
    assert watch_status(server) is None  # a server without --watch


def photo(server: Server, path: Path) -> dict:
    """The API's record of the photo at ``path`` (found through a search)."""
    hits = server.client().get(f"{API}/search", params={"q": "a photo", "k": 200, "kind": "image"})
    (hit,) = [h for h in hits.json() if h["image"] == str(path)]
    return server.client().get(f"{API}/photos/{hit['photo_id']}").json()


def test_a_copied_photo_becomes_searchable_moves_with_its_regions_and_goes(
    watched: Server, tmp_path: Path
) -> None:
    folder = watched.index_dir.parent / "photos"
    (source,) = make_photos(tmp_path, 1, seed=50)
    target, moved = folder / "dropped.jpg", folder / "sub" / "renamed.jpg"
    assert not found(watched, target)
    shutil.copy(source, target)
    wait_for(lambda: found(watched, target), watched, "the copied photo in results")
    before = photo(watched, target)
    assert len(before["regions"]) > 1  # the whole photo and its objects
    moved.parent.mkdir()
    os.rename(target, moved)
    wait_for(lambda: found(watched, moved), watched, "the moved photo in results")
    after = photo(watched, moved)
    assert (after["photo_id"], after["regions"]) == (before["photo_id"], before["regions"])
    assert not found(watched, target)
    os.remove(moved)
    wait_for(lambda: not found(watched, moved), watched, "the deleted photo gone")
    assert "watch batch: 1 added" in watched.output()
    assert "watch batch: 0 added, 0 changed, 1 moved, 0 deleted" in watched.output()
    deleted = "watch batch: 0 added, 0 changed, 0 moved, 1 deleted"
    # The batch's line is printed just after its commit, which searches may see first.
    wait_for(lambda: deleted in watched.output(), watched, "the delete's batch line")


def committed(index_dir: Path) -> dict[str, tuple[int, set[int]]]:
    """Path -> (photo id, region ids) of every committed photo."""
    with Store(index_dir) as store:
        return {
            photo.path: (photo.id, {r.id for r in regions})
            for photo, regions in store.iter_photos(vectors=False)
        }


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_and_a_restart_catches_up(
    tmp_path: Path, models: Models
) -> None:
    folder, index_dir = tmp_path / "photos", tmp_path / "index"
    make_photos(folder, 2, seed=1)
    build_index(models, folder, index_dir)
    burst = make_photos(tmp_path / "staging", 40, seed=100)
    db = index_dir / DB_NAME
    with run_server(index_dir, models.clip_dir, "--watch", str(folder)) as server:
        wait_for(lambda: watch_status(server)["last_batch_at"], server, "the catch-up")
        for photo in burst:
            shutil.copy(photo, folder / photo.name)
        wait_for(lambda: committed_photos(db) > 2, server, "the batch's first commit")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
    seen = committed_photos(db)
    assert 2 < seen < 42, f"the kill did not land mid-batch ({seen} photos committed)"
    assert_survived_crash(index_dir, models.embedder)  # type: ignore[arg-type]
    kept = committed(index_dir)

    with run_server(index_dir, models.clip_dir, "--watch", str(folder)) as server:
        wait_for(lambda: committed_photos(db) == 42, server, "the catch-up after the kill")
        wait_for(lambda: watch_status(server)["state"] == "idle", server, "the end of catch-up")
        assert found(server, folder / burst[-1].name)
    after = committed(index_dir)
    assert {p: after[p] for p in kept} == kept  # what was committed stayed as it was
    with Store(index_dir) as store:
        assert check(store).consistent
