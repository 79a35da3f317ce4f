"""Re-running ``index`` does only the work the folder's changes call for.

Added photos are indexed, changed ones re-indexed with their old regions and vectors gone,
deleted ones pruned (or kept with ``prune=False``), moved and touched ones updated without
running a model, and an unchanged folder loads no model at all. One writer at a time; the
CLIP model of an index is checked by its vectors, not its name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import indexer.indexing.failures
from indexer.errors import IndexLockedError, StoreError
from indexer.indexing import Indexer
from indexer.indexing.regions import RegionEmbedder
from indexer.store import KIND_IMAGE, Region, Store
from retrieval.cli import app
from retrieval.search import Searcher
from tests.fixtures import FAST, REPO_ROOT, Models, cli_index_args, make_indexer, write_photo  # noqa: E402
from tests.model_factory import make_tiny_clip

NAMES = ("a.jpg", "b.png", "sub/c.jpg")


@pytest.fixture
def indexed(models: Models, tmp_path: Path) -> tuple[Path, Path]:
    """(photo folder, index folder) after a first full run over three photos."""
    folder = tmp_path / "photos"
    for i, name in enumerate(NAMES):
        write_photo(folder / name, seed=i)
    index_dir = tmp_path / "index"
    stats = make_indexer(models, index_dir).index([folder])
    assert stats.indexed == len(NAMES) and stats.failures == 0
    return folder, index_dir


def region_ids(index_dir: Path) -> dict[str, list[int]]:
    """Photo path -> its region ids, in id order."""
    with Store(index_dir) as store:
        return {photo.path: [r.id for r in regions] for photo, regions in store.iter_photos()}


def assert_vectors_match_regions(index_dir: Path) -> None:
    """FAISS holds exactly the region ids SQLite holds, and the saved file is current."""
    with Store(index_dir) as store:
        counts = store.counts()
        index, from_file = store.load_vectors()
        with store.session() as s:
            ids = {int(i) for (i,) in s.execute(select(Region.id))}
    assert from_file, "the run left a stale FAISS file behind"
    assert index.ntotal == counts.regions
    assert set(index.ids().tolist()) == ids
    assert counts.images == counts.photos


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every photo the pipeline decodes."""
    reads: list[str] = []
    real = indexer.indexing.failures.read_photo

    def counting(path: str, **kwargs: object) -> object:
        reads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(indexer.indexing.failures, "read_photo", counting)
    return reads


def forbid_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any model run fail the test: moves and touches must not need one."""

    def boom(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model ran although no photo needed embedding")

    monkeypatch.setattr(RegionEmbedder, "embed", boom)


def test_adding_a_file_indexes_only_it(
    models: Models, indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    write_photo(folder / "sub" / "new.webp", seed=9)
    reads = count_reads(monkeypatch)

    stats = make_indexer(models, index_dir).index([folder])

    assert (stats.indexed, stats.unchanged, stats.moved, stats.removed) == (1, 3, 0, 0)
    assert reads == [str(folder / "sub" / "new.webp")]
    after = region_ids(index_dir)
    assert {p: after[p] for p in before} == before  # the others were not touched
    assert min(after[str(folder / "sub" / "new.webp")]) > max(max(v) for v in before.values())
    assert_vectors_match_regions(index_dir)


def region_set(index_dir: Path) -> set[tuple[str, str, tuple[float, ...], str | None]]:
    with Store(index_dir) as store:
        return {
            (photo.path, r.kind, tuple(round(v, 1) for v in r.box), r.label)
            for photo, regions in store.iter_photos()
            for r in regions
        }


def test_incremental_runs_give_the_regions_of_one_full_run(
    models: Models, indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    """What a photo's regions are must not depend on which photos shared its batch."""
    folder, index_dir = indexed
    write_photo(folder / "wide.jpg", size=(160, 60), seed=21)
    write_photo(folder / "sub" / "tall.png", size=(60, 120), seed=22)
    make_indexer(models, index_dir).index([folder])

    fresh = tmp_path / "fresh"
    make_indexer(models, fresh).index([folder])
    assert region_set(index_dir) == region_set(fresh)


def test_modified_file_is_reindexed_and_its_old_regions_removed(
    models: Models, indexed: tuple[Path, Path]
) -> None:
    folder, index_dir = indexed
    path = folder / "a.jpg"
    before = region_ids(index_dir)
    old_mtime = path.stat().st_mtime_ns
    write_photo(path, size=(120, 90), seed=42)  # different bytes (and size)
    os.utime(path, ns=(old_mtime + 5_000_000_000, old_mtime + 5_000_000_000))

    stats = make_indexer(models, index_dir).index([folder])

    assert (stats.indexed, stats.unchanged, stats.moved, stats.removed) == (1, 2, 0, 0)
    after = region_ids(index_dir)
    assert set(after) == set(before)
    assert not set(after[str(path)]) & set(before[str(path)]), "old regions must be gone"
    assert {p: v for p, v in after.items() if p != str(path)} == {
        p: v for p, v in before.items() if p != str(path)
    }
    with Store(index_dir) as store:
        index, _ = store.load_vectors()
        assert index.ntotal == store.counts().regions
        assert not set(index.ids().tolist()) & set(before[str(path)])
        photo = next(p for p, _ in store.iter_photos() if p.path == str(path))
        assert (photo.width, photo.height) == (120, 90)
    assert_vectors_match_regions(index_dir)


def test_same_size_rewrite_is_detected_by_mtime(models: Models, indexed: tuple[Path, Path]) -> None:
    folder, index_dir = indexed
    path = folder / "d.bmp"  # uncompressed: a rewrite keeps the exact byte size
    write_photo(path, seed=70)
    make_indexer(models, index_dir).index([folder])
    before = region_ids(index_dir)[str(path)]
    old = path.stat()
    write_photo(path, seed=71)
    assert path.stat().st_size == old.st_size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 1_000_000))

    stats = make_indexer(models, index_dir).index([folder])
    assert (stats.indexed, stats.unchanged) == (1, len(NAMES))
    assert not set(region_ids(index_dir)[str(path)]) & set(before)
    assert_vectors_match_regions(index_dir)


def test_deleted_file_is_pruned(models: Models, indexed: tuple[Path, Path]) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    gone = folder / "sub" / "c.jpg"
    gone.unlink()

    stats = make_indexer(models, index_dir).index([folder])

    assert (stats.indexed, stats.unchanged, stats.removed) == (0, 2, 1)
    after = region_ids(index_dir)
    assert set(after) == set(before) - {str(gone)}
    with Store(index_dir) as store:
        index, _ = store.load_vectors()
        assert not set(index.ids().tolist()) & set(before[str(gone)])
        with store.session() as s:
            left = {int(i) for (i,) in s.execute(select(Region.id))}
        assert not left & set(before[str(gone)])
    assert_vectors_match_regions(index_dir)


def test_deleted_file_is_kept_without_prune(models: Models, indexed: tuple[Path, Path]) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    (folder / "sub" / "c.jpg").unlink()

    stats = make_indexer(models, index_dir).index([folder], prune=False)

    assert (stats.indexed, stats.removed) == (0, 0)
    assert region_ids(index_dir) == before
    assert_vectors_match_regions(index_dir)


def test_deleting_a_whole_folder_prunes_only_under_it(
    models: Models, indexed: tuple[Path, Path]
) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    shutil.rmtree(folder / "sub")
    # Indexing a sibling path that merely starts with the same letters prunes nothing.
    other = folder.parent / "photos-other"
    write_photo(other / "x.jpg", seed=11)
    stats = make_indexer(models, index_dir).index([other])
    assert (stats.indexed, stats.removed) == (1, 0)
    assert set(before) <= set(region_ids(index_dir))

    stats = make_indexer(models, index_dir).index([folder])
    assert stats.removed == 1
    assert str(folder / "sub" / "c.jpg") not in region_ids(index_dir)
    assert str(other / "x.jpg") in region_ids(index_dir)


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda f: (f / "a.jpg", f / "renamed.jpg"), id="rename"),
        pytest.param(lambda f: (f / "a.jpg", f / "sub" / "deeper" / "a.jpg"), id="to-subfolder"),
    ],
)
def test_moved_file_keeps_its_regions_without_running_models(
    models: Models,
    indexed: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    move: Callable[[Path], tuple[Path, Path]],
) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    src, dst = move(folder)
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)
    forbid_models(monkeypatch)

    indexer_ = make_indexer(models, index_dir, inject=False)
    stats = indexer_.index([folder])

    assert (stats.moved, stats.indexed, stats.removed, stats.failures) == (1, 0, 0, 0)
    assert indexer_.embedder is None and indexer_.detector is None
    after = region_ids(index_dir)
    assert str(src) not in after
    assert after[str(dst)] == before[str(src)]  # same regions, same ids: nothing re-embedded
    assert_vectors_match_regions(index_dir)

    # The move is settled: the next run sees nothing to do.
    again = make_indexer(models, index_dir, inject=False).index([folder])
    assert (again.moved, again.indexed, again.unchanged) == (0, 0, len(NAMES))


def test_touched_file_is_not_reembedded(
    models: Models, indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    path = folder / "b.png"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    forbid_models(monkeypatch)
    reads = count_reads(monkeypatch)

    indexer_ = make_indexer(models, index_dir, inject=False)
    stats = indexer_.index([folder])

    assert (stats.indexed, stats.moved, stats.unchanged) == (0, 0, len(NAMES))
    assert reads == [str(path)]  # hashed once to see that the bytes did not change
    assert indexer_.embedder is None and indexer_.detector is None
    assert region_ids(index_dir) == before
    with Store(index_dir) as store:
        assert store.photo_states()[str(path)].mtime_ns == st.st_mtime_ns + 3_000_000_000

    reads.clear()
    make_indexer(models, index_dir, inject=False).index([folder])
    assert reads == []  # the new mtime was recorded: not even read again


def test_unchanged_rerun_loads_no_model(
    models: Models, indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    with Store(index_dir) as store:
        generation = store.generation
    reads = count_reads(monkeypatch)

    indexer_ = make_indexer(models, index_dir, inject=False)
    stats = indexer_.index([folder])

    assert (stats.indexed, stats.unchanged, stats.moved, stats.removed) == (0, len(NAMES), 0, 0)
    assert indexer_.embedder is None and indexer_.detector is None
    assert reads == []
    # The work counted: the scan and the FAISS file's check, no hash, decode, model or commit.
    assert set(indexer_.timings) <= {"scan", "faiss"}, f"work was done: {dict(indexer_.timings)}"
    assert indexer_.models_started_at is None
    assert region_ids(index_dir) == before
    with Store(index_dir) as store:
        assert store.generation == generation  # nothing was committed
    assert_vectors_match_regions(index_dir)


def test_unchanged_rerun_with_a_relative_model_path_loads_no_model(
    models: Models, indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model folder named another way (relative, ``./``) is the index's model."""
    folder, index_dir = indexed
    monkeypatch.chdir(models.clip_dir.parent)
    for name in (models.clip_dir.name, f"./{models.clip_dir.name}/"):
        indexer_ = Indexer(
            index_dir, clip_model=name, detector_weights=str(models.yolo_path), device="cpu"
        )
        stats = indexer_.index([folder])
        assert (stats.indexed, stats.unchanged) == (0, len(NAMES))
        assert indexer_.embedder is None, f"--clip-model {name} loaded CLIP for a no-change run"


def test_second_writer_is_refused_while_the_lock_is_held(
    models: Models, indexed: tuple[Path, Path]
) -> None:
    folder, index_dir = indexed
    holder = Store(index_dir)
    holder.lock()
    try:
        with pytest.raises(IndexLockedError, match=f"locked by PID {os.getpid()}"):
            make_indexer(models, index_dir).index([folder])
        with Searcher(index_dir, embedder=models.embedder) as searcher:  # readers still work
            assert searcher.search(text="a cat", top_k=3)
    finally:
        holder.close()
    # Released: writing works again.
    assert make_indexer(models, index_dir).index([folder]).unchanged == len(NAMES)


def test_second_writer_is_refused_while_another_process_writes(
    models: Models, indexed: tuple[Path, Path]
) -> None:
    folder, index_dir = indexed
    code = (
        "import sys, time\n"
        "from indexer.store import Store\n"
        "s = Store(sys.argv[1]); s.lock(); print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(index_dir)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match=f"locked by PID {proc.pid}") as raised:
            make_indexer(models, index_dir).index([folder])
        assert "Wait for it to finish" in str(raised.value)
        result = CliRunner().invoke(
            app,
            cli_index_args(models, folder, index_dir),
        )
        assert result.exit_code == IndexLockedError.exit_code, result.output
        said = " ".join(result.output.split())
        assert f"locked by PID {proc.pid}" in said and "Traceback" not in said
    finally:
        proc.kill()  # a killed writer must not leave a stale lock
        proc.wait(timeout=30)
    assert make_indexer(models, index_dir).index([folder]).unchanged == len(NAMES)


@pytest.fixture(scope="module")
def other_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny CLIP with the same shape but other weights (seed 1)."""
    return make_tiny_clip(tmp_path_factory.mktemp("other_clip"), seed=1)


@pytest.mark.slow  # builds and loads a second CLIP model
def test_search_with_another_clip_model_is_refused(
    models: Models, indexed: tuple[Path, Path], other_clip_dir: Path
) -> None:
    _folder, index_dir = indexed
    with pytest.raises(StoreError) as raised:
        Searcher(index_dir, clip_model=str(other_clip_dir), device="cpu")
    message = str(raised.value)
    assert "not comparable" in message and str(models.clip_dir) in message

    result = CliRunner().invoke(
        app,
        ["search", "a cat", "--index", str(index_dir), "--clip-model", str(other_clip_dir)],
    )
    assert result.exit_code == StoreError.exit_code, result.output
    assert "not comparable" in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.slow  # builds and loads a second CLIP model
def test_indexing_with_another_clip_model_is_refused(
    models: Models, indexed: tuple[Path, Path], other_clip_dir: Path
) -> None:
    folder, index_dir = indexed
    before = region_ids(index_dir)
    write_photo(folder / "new.jpg", seed=5)
    other = Indexer(
        index_dir,
        clip_model=str(other_clip_dir),
        detector_weights=str(models.yolo_path),
        device="cpu",
        options=FAST,
        detector=models.detector,
    )
    with pytest.raises(StoreError, match="not comparable"):
        other.index([folder])
    assert region_ids(index_dir) == before  # refused before touching anything


def test_same_weights_from_a_copied_folder_are_accepted(
    models: Models, indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, index_dir = indexed
    copy = tmp_path / "clip-copy"
    shutil.copytree(models.clip_dir, copy)
    with Searcher(index_dir, clip_model=str(copy), device="cpu") as searcher:
        results = searcher.search(text="a cat", top_k=3)
    assert {r.image for r in results} == {str(folder / n) for n in NAMES}
    assert all(r.kind in (KIND_IMAGE, "object") for r in results)

    write_photo(folder / "new.jpg", seed=5)
    stats = Indexer(
        index_dir,
        clip_model=str(copy),
        detector_weights=str(models.yolo_path),
        device="cpu",
        options=FAST,
        detector=models.detector,
    ).index([folder])
    assert stats.indexed == 1 and stats.failures == 0
