"""plan_run: a scan sorted against the store's photo states."""

from __future__ import annotations

import os
from pathlib import Path

from indexer.indexing.plan import plan_run
from indexer.store import PhotoState
from tests.fixtures import write_photo


def test_plan_sorts_unchanged_work_missing_and_problems(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "same.jpg", seed=1)
    write_photo(folder / "changed.jpg", seed=2)
    write_photo(folder / "new.jpg", seed=3)
    (folder / "broken.jpg").symlink_to(folder / "nowhere.jpg")
    same, changed = os.stat(folder / "same.jpg"), os.stat(folder / "changed.jpg")
    states = {
        str(folder / "same.jpg"): PhotoState(1, same.st_size, same.st_mtime_ns, "h1"),
        str(folder / "changed.jpg"): PhotoState(2, changed.st_size + 1, 0, "h2"),
        str(folder / "gone.jpg"): PhotoState(3, 10, 0, "h3"),
        str(tmp_path / "elsewhere" / "x.jpg"): PhotoState(4, 10, 0, "h4"),
    }

    plan = plan_run([str(folder)], states)

    assert plan.scanned == 4 and plan.unchanged == 1
    assert [w.file.path for w in plan.work] == [
        str(folder / "changed.jpg"),
        str(folder / "new.jpg"),
    ]
    assert plan.work[0].previous == states[str(folder / "changed.jpg")]
    assert plan.work[1].previous is None
    assert [(p.path, p.stage) for p in plan.problems] == [(str(folder / "broken.jpg"), "scan")]
    # Only missing photos under the scanned roots can be moves or deletions.
    assert dict(plan.moved_from) == {"h3": [str(folder / "gone.jpg")]}
    assert plan.gone() == [str(folder / "gone.jpg")]
