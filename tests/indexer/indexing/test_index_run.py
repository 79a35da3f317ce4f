"""IndexRun, the one writer of a run: what each step commits and counts, when FAISS saves.

The store, the scan and the models are real (tiny random models); batches are decoded with
the pipeline's own decode step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from indexer.indexing.failures import STAGE_DECODE, decode_or_error
from indexer.indexing.plan import Plan, plan_run
from indexer.indexing.regions import RegionEmbedder
from indexer.indexing.run import FIRST_BATCH, IndexRun, IndexStats, batches
from indexer.media.decode import DecodeError
from indexer.store import FailureRecord, Store
from tests.fixtures import FAST, Models, write_photo


def decoded(plan: Plan) -> list:
    return [
        (w, decode_or_error(w.file.path, max_megapixels=50, decode_side=None)) for w in plan.work
    ]


def new_run(store: Store, plan: Plan, models: Models, save_every: float = 60.0) -> IndexRun:
    timings: dict[str, float] = {}
    step = RegionEmbedder(models.embedder, models.detector, FAST, timings)  # type: ignore[arg-type]
    return IndexRun(
        store,
        IndexStats(scanned=plan.scanned, unchanged=plan.unchanged),
        plan,
        embed=step.embed,
        timings=timings,
        index_type="flat",
        save_every=save_every,
    )


def test_batches_start_small_then_take_the_full_size() -> None:
    sizes = [len(b) for b in batches(range(21), 8)]
    assert sizes == [FIRST_BATCH, 8, 8, 1]
    assert [len(b) for b in batches(range(3), 2, first=5)] == [2, 1]
    assert list(batches([], 8)) == []


def test_a_first_run_commits_photos_and_failures_and_counts_them(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        write_photo(folder / f"p{i}.jpg", seed=i)
    (folder / "bad.jpg").write_bytes(b"not a photo")
    with Store(tmp_path / "index", create=True) as store:
        plan = plan_run([str(folder)], {})
        run = new_run(store, plan, models)
        embedded = run.run_models(decoded(plan))
        assert store.counts().photos == 0  # nothing is stored before the commit
        run.commit_embedded(embedded)
        run.save()
        counts = store.counts()
        failures = [(f.path, f.stage) for f in store.failures()]
        fresh = store.faiss_is_fresh()
    stats = run.stats
    assert (stats.indexed, stats.failures) == (3, 1)
    assert counts.photos == 3 and counts.objects == stats.objects
    assert failures == [(str(folder / "bad.jpg"), STAGE_DECODE)]
    assert stats.failed[0][0] == str(folder / "bad.jpg")
    assert fresh and set(run.timings) >= {"detect", "embed", "store", "faiss"}


def test_unchanged_bytes_are_touches_and_known_bytes_at_a_new_path_are_moves(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg", seed=1)
    write_photo(folder / "b.jpg", seed=2)
    with Store(tmp_path / "index", create=True) as store:
        first = plan_run([str(folder)], {})
        new_run(store, first, models).commit_embedded(
            new_run(store, first, models).run_models(decoded(first))
        )
        os.utime(folder / "a.jpg", ns=(1, 1))  # same bytes, new stat
        shutil.move(folder / "b.jpg", folder / "moved.jpg")
        write_photo(folder / "c.jpg", seed=3)
        plan = plan_run([str(folder)], store.photo_states())
        run = new_run(store, plan, models)
        parts = run.sort_batch(decoded(plan))
        assert [plan.work[i].file.path for i in parts.for_models] == [str(folder / "c.jpg")]
        assert len(parts.touches) == len(parts.moves) == 1 and parts.failures == []
        assert (run.stats.unchanged, run.stats.moved) == (1, 1)
        run.commit([], parts.failures, moves=parts.moves, touches=parts.touches)
        states = store.photo_states()
    assert str(folder / "moved.jpg") in states and str(folder / "b.jpg") not in states
    assert states[str(folder / "a.jpg")].mtime_ns == 1


def test_settle_known_commits_what_needs_no_model_and_returns_the_rest(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "new.jpg", seed=4)
    with Store(tmp_path / "index", create=True) as store:
        plan = plan_run([str(folder)], {})
        run = new_run(store, plan, models)
        work = plan.work[0]
        rest = run.settle_known([(work, DecodeError("unreadable"))])
        assert rest == [] and run.stats.failures == 1
        assert run.settle_known(
            [(work, decode_or_error(work.file.path, max_megapixels=50, decode_side=None))]
        ) == [work]


def test_prune_removes_vanished_photos_and_their_failures_under_the_roots_only(
    models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "keep.jpg", seed=1)
    write_photo(folder / "gone.jpg", seed=2)
    with Store(tmp_path / "index", create=True) as store:
        plan = plan_run([str(folder)], {})
        run = new_run(store, plan, models)
        run.commit_embedded(run.run_models(decoded(plan)))
        elsewhere = str(tmp_path / "other" / "x.jpg")
        store.commit_batch(
            [],
            [
                FailureRecord(str(folder / "old.jpg"), "decode", "bad"),
                FailureRecord(elsewhere, "decode", "bad"),
            ],
        )
        (folder / "gone.jpg").unlink()
        plan = plan_run([str(folder)], store.photo_states())
        run = new_run(store, plan, models)
        run.prune([str(folder)])
        left = sorted(store.photo_states())
        failures = [f.path for f in store.failures()]
    assert run.stats.removed == 1 and left == [str(folder / "keep.jpg")]
    assert failures == [elsewhere]


@pytest.mark.parametrize(("save_every", "saves"), [(3600.0, False), (-1.0, True)])
def test_save_if_due_waits_for_save_every(
    models: Models, tmp_path: Path, save_every: float, saves: bool
) -> None:
    with Store(tmp_path / "index", create=True) as store:
        plan = plan_run([str(tmp_path)], {})
        run = new_run(store, plan, models, save_every=save_every)
        before = run.last_save
        run.save_if_due()
        assert ("faiss" in run.timings) is saves
        assert (run.last_save > before) is saves
        assert run.dirty is not saves  # a save that ran checked the file; else still to do
