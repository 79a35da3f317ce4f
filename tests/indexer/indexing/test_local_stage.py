"""The local model stage: decoding in order on a pool, commits behind the model work."""

from __future__ import annotations

import threading
from pathlib import Path

from indexer.indexing.failures import decode_or_error
from indexer.indexing.local_stage import decoded_in_order, run_locally
from indexer.indexing.plan import Work, plan_run
from indexer.indexing.regions import RegionEmbedder
from indexer.indexing.run import IndexRun, IndexStats
from indexer.media.decode import DecodedPhoto, DecodeError
from indexer.store import Store
from tests.fixtures import FAST, Models, write_photo


def decode(work: Work) -> DecodedPhoto | DecodeError:
    return decode_or_error(work.file.path, max_megapixels=50, decode_side=None)


def test_decoded_in_order_keeps_the_order_and_a_bounded_window(tmp_path: Path) -> None:
    for i in range(9):
        write_photo(tmp_path / f"p{i}.png", seed=i)
    work = plan_run([str(tmp_path)], {}).work
    started: list[str] = []
    lock = threading.Lock()

    def recording(item: Work) -> DecodedPhoto | DecodeError:
        with lock:
            started.append(item.file.path)
        return decode(item)

    seen = []
    for item, photo in decoded_in_order(work, recording, workers=3, window=2):
        with lock:
            assert len(started) <= len(seen) + 3  # at most the window (+ the refill) ahead
        seen.append(item)
        assert isinstance(photo, DecodedPhoto) and photo.path == item.file.path
    assert seen == work


def test_run_locally_commits_every_batch_in_order_and_reports_progress(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    for i in range(7):
        write_photo(folder / f"p{i}.jpg", seed=i)
    (folder / "bad.jpg").write_bytes(b"no")
    progress: list[tuple[int, int]] = []
    with Store(tmp_path / "index", create=True) as store:
        plan = plan_run([str(folder)], {})
        step = RegionEmbedder(models.embedder, models.detector, FAST)  # type: ignore[arg-type]
        run = IndexRun(
            store,
            IndexStats(),
            plan,
            embed=step.embed,
            timings={},
            index_type="flat",
            save_every=60,
        )
        generation = store.generation
        run_locally(
            run,
            plan.work,
            decode,
            batch_size=3,
            workers=2,
            progress=lambda done, total: progress.append((done, total)),
        )
        commits = store.generation - generation
        paths = set(store.photo_states())
    assert progress == [(3, 8), (6, 8), (8, 8)]  # first batch of 3 (FIRST_BATCH is 4)
    assert commits == 3 and len(paths) == 7 and run.stats.failures == 1
