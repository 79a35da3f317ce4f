"""Indexing on a real local Ray cluster gives the index a local run gives, with the same guarantees.

The slow tests run the real Ray Data pipeline (decode tasks, an actor pool loading the tiny
models from disk, results streamed back to the driver) on the session's local cluster (see
conftest.py) and compare it with the local pipeline on the same photos. The others check how
the actor pool is sized and that a run with nothing to embed never reaches Ray.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from indexer.indexing import Indexer
from indexer.indexing.ray_cluster import Cluster, Resources
from indexer.indexing.ray_stage import ActorPlan, RayStage, plan_actors
from indexer.indexing.ray_workers import ModelSpec
from indexer.indexing.regions import RegionEmbedder
from indexer.media.decode import read_photo
from indexer.settings import RaySettings
from indexer.store import DB_NAME, Store, decode_vector
from tests.fixtures import (
    FAST,
    REPO_ROOT,
    Models,
    child_env,
    committed_photos,
    make_indexer,
    region_set,
    write_photo,
)
from tests.fixtures.ray_helpers import descendants, write_photos

BATCH = 4

Key = tuple[str, str, tuple[int, ...], str | None]


def ray_indexer(models: Models, index_dir: Path, address: str = "local") -> Indexer:
    """An Indexer whose model stage runs on Ray; the actors load the tiny models by path."""
    return make_indexer(
        models,
        index_dir,
        inject=False,
        precision="fp32",
        backend="torch",  # as the injected models of the local runs
        batch_size=BATCH,
        ray=RaySettings(address=address),
    )


def local_indexer(models: Models, index_dir: Path) -> Indexer:
    return make_indexer(models, index_dir, precision="fp32", batch_size=BATCH)


def regions_with_vectors(index_dir: Path) -> dict[Key, list[np.ndarray]]:
    """(path, kind, box to the pixel, label) -> the vectors of the regions with that key."""
    out: dict[Key, list[np.ndarray]] = {}
    with Store(index_dir) as store:
        for photo, regions in store.iter_photos():
            for r in regions:
                key = (photo.path, r.kind, tuple(int(round(v)) for v in r.box), r.label)
                out.setdefault(key, []).append(decode_vector(r.vector, store.dim()))
    return out


def failures(index_dir: Path) -> set[tuple[str, str, str]]:
    with Store(index_dir) as store:
        return {(f.path, f.stage, f.reason) for f in store.failures()}


def assert_same_index(ray_dir: Path, local_dir: Path) -> None:
    """Same regions (paths, kinds, boxes to the pixel, labels), vectors within cosine 0.999."""
    got, want = regions_with_vectors(ray_dir), regions_with_vectors(local_dir)
    assert Counter({k: len(v) for k, v in got.items()}) == Counter(
        {k: len(v) for k, v in want.items()}
    )
    worst = min(
        max(float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b)) for b in want[key])
        for key, vectors in got.items()
        for a in vectors
    )
    assert worst >= 0.999, worst
    assert failures(ray_dir) == failures(local_dir)


@pytest.fixture(scope="module")
def both(
    ray_cluster: str, models: Models, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    """(photo folder, index built on Ray, index built locally): 14 photos and a corrupt one."""
    root = tmp_path_factory.mktemp("ray_both")
    folder = root / "photos"
    write_photos(folder, 14)
    (folder / "set1" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    ray_dir, local_dir = root / "ray-index", root / "local-index"
    ray_stats = ray_indexer(models, ray_dir).index([folder])
    local_stats = local_indexer(models, local_dir).index([folder])
    assert ray_stats.to_dict() | {"seconds": 0, "photos_per_second": 0} == local_stats.to_dict() | {
        "seconds": 0,
        "photos_per_second": 0,
    }
    return folder, ray_dir, local_dir


@pytest.mark.slow
def test_ray_and_local_build_the_same_index(both: tuple[Path, Path, Path]) -> None:
    folder, ray_dir, local_dir = both
    assert_same_index(ray_dir, local_dir)
    with Store(ray_dir) as store:
        assert store.counts().photos == 14
        assert store.counts().objects > 0  # the detector ran on the actors


@pytest.mark.slow
def test_a_corrupt_file_on_ray_is_recorded_as_a_failure(both: tuple[Path, Path, Path]) -> None:
    folder, ray_dir, _ = both
    recorded = failures(ray_dir)
    assert len(recorded) == 1
    path, stage, reason = recorded.pop()
    assert path == str(folder / "set1" / "corrupt.jpg") and stage == "decode"
    assert "not a readable image" in reason or "corrupt" in reason


@pytest.mark.slow
def test_incremental_runs_on_ray_behave_as_local_ones(
    both: tuple[Path, Path, Path], models: Models, tmp_path: Path
) -> None:
    """A move, a delete, an edit and a new photo: same counts, same regions, moves kept."""
    folder, ray_dir, local_dir = both
    moved_from, moved_to = folder / "set0" / "p00.jpg", folder / "elsewhere" / "p00.jpg"
    with Store(ray_dir) as store:
        ids_before = {p.path: [r.id for r in regions] for p, regions in store.iter_photos()}
    moved_to.parent.mkdir()
    moved_from.rename(moved_to)
    (folder / "set1" / "p01.png").unlink()
    edited = folder / "set2" / "p02.webp"
    old = edited.stat().st_mtime_ns
    write_photo(edited, size=(120, 90), seed=77)
    os.utime(edited, ns=(old + 5_000_000_000, old + 5_000_000_000))
    write_photo(folder / "set0" / "new.jpg", size=(100, 80), seed=78)

    ray_stats = ray_indexer(models, ray_dir).index([folder])
    local_stats = local_indexer(models, local_dir).index([folder])

    counts = ("indexed", "unchanged", "moved", "removed", "failures")
    assert {c: getattr(ray_stats, c) for c in counts} == {
        c: getattr(local_stats, c) for c in counts
    }
    assert (ray_stats.indexed, ray_stats.moved, ray_stats.removed) == (2, 1, 1)
    assert_same_index(ray_dir, local_dir)
    with Store(ray_dir) as store:
        ids_after = {p.path: [r.id for r in regions] for p, regions in store.iter_photos()}
    assert ids_after[str(moved_to)] == ids_before[str(moved_from)]  # moved, not re-embedded


def test_a_rerun_with_nothing_to_do_does_not_reach_ray(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray is only contacted for files that need the models: here, none."""
    folder = tmp_path / "photos"
    write_photos(folder, 3)
    local_indexer(models, tmp_path / "index").index([folder])

    def no_cluster(self: Cluster) -> Cluster:
        raise AssertionError("a run with nothing to embed connected to Ray")

    monkeypatch.setattr(Cluster, "__enter__", no_cluster)
    indexer = ray_indexer(models, tmp_path / "index")
    stats = indexer.index([folder])
    assert (stats.indexed, stats.unchanged, stats.failures) == (0, 3, 0)
    assert indexer.ray_workers == {}


def ray_actor_pids() -> list[int]:
    """The detect + embed actors of the session's cluster (children of its raylet)."""
    return [pid for pid, cmd in descendants(os.getpid()) if "RegionActor" in cmd and "ray::" in cmd]


@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_the_run_completes(
    ray_cluster: str, models: Models, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photos(folder, 40, seed=3)
    killed: list[int] = []

    def kill_an_actor(done: int, total: int) -> None:
        if done and not killed and done < total:
            pids = ray_actor_pids()
            assert pids, "no actor process found to kill"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    indexer = ray_indexer(models, tmp_path / "index")
    stats = indexer.index([folder], progress=kill_an_actor)

    assert killed, "the run finished before an actor could be killed"
    assert (stats.indexed, stats.failures) == (40, 0)
    assert killed[0] in indexer.ray_workers  # the killed actor had returned photos ...
    assert set(indexer.ray_workers) - {killed[0]}, "... and a restarted actor did the rest"
    reference = tmp_path / "reference"
    local_indexer(models, reference).index([folder])
    assert region_set(tmp_path / "index") == region_set(reference)


@pytest.mark.slow
def test_the_in_cluster_feeder_of_ray_client_drivers_streams_the_same_results(
    ray_cluster: str, models: Models, tmp_path: Path
) -> None:
    """A ``ray://`` driver gets its batches from a feeder actor running the same pipeline."""
    paths = write_photos(tmp_path / "photos", 6, seed=9)
    corrupt = tmp_path / "photos" / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    spec = ModelSpec(str(models.clip_dir), str(models.yolo_path), "cpu", "fp32", "torch", FAST, 64)
    stage = RayStage(RaySettings(address="local"), feed=True)
    try:
        got = {
            o.path: o
            for batch in stage.stream(
                [str(p) for p in [*paths, corrupt]],
                spec,
                batch_size=BATCH,
                max_megapixels=180.0,
                decode_side=1280,
            )
            for o in batch
        }
    finally:
        stage.close()
    want = RegionEmbedder(models.embedder, models.detector, FAST).embed(
        [read_photo(str(p)) for p in paths]
    )
    assert set(got) == {str(p) for p in [*paths, corrupt]}
    assert got[str(corrupt)].failure is not None and got[str(corrupt)].failure.stage == "decode"
    for photo in want:
        record = got[photo.path].record
        assert record is not None
        assert [(r.kind, r.box, r.label) for r in record.regions] == [
            (r.kind, r.box, r.label) for r in photo.regions
        ]
        for a, b in zip(record.regions, photo.regions, strict=True):
            assert float(a.vector @ b.vector) > 0.999


CHILD = """
import sys
from indexer.indexing import Indexer
from indexer.settings import DetectOptions, RaySettings

folder, index_dir, clip, yolo, address = sys.argv[1:6]
Indexer(
    index_dir, clip_model=clip, detector_weights=yolo, device="cpu", precision="fp32",
    backend="torch", batch_size=4, options=DetectOptions(imgsz=320, max_objects=3),
    ray=RaySettings(address=address),
).index([folder])
"""


@pytest.mark.slow
def test_a_killed_driver_resumes_to_the_same_index(
    ray_cluster: str, models: Models, tmp_path: Path
) -> None:
    """SIGKILL the driver (a separate process on the running cluster) mid-run, then resume."""
    folder = tmp_path / "photos"
    write_photos(folder, 40, seed=5)
    index_dir = tmp_path / "index"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(index_dir), str(models.clip_dir)]
        + [str(models.yolo_path), ray_cluster],
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = -1
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            seen = committed_photos(index_dir / DB_NAME)
            if seen >= 8:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode(errors="replace")[-3000:]
    assert 8 <= seen < 40, f"the kill did not land mid-run ({seen} photos committed)"

    resumed = ray_indexer(models, index_dir).index([folder])
    assert resumed.failures == 0 and resumed.indexed + resumed.unchanged == 40
    assert resumed.indexed < 40  # committed work was kept, not redone
    reference = tmp_path / "reference"
    local_indexer(models, reference).index([folder])
    assert_same_index(index_dir, reference)


@pytest.mark.parametrize(
    ("settings", "res", "want"),
    [
        (RaySettings(), Resources(nodes=1, cpus=2, gpus=0), ActorPlan(1, 1.0, 0.0, 2)),
        (RaySettings(), Resources(nodes=3, cpus=48, gpus=0), ActorPlan(3, 1.0, 0.0, 16)),
        (RaySettings(), Resources(nodes=2, cpus=32, gpus=4), ActorPlan(4, 1.0, 1.0, 8)),
        (
            RaySettings(actors=2, cpus_per_actor=4, gpus_per_actor=0.5),
            Resources(nodes=1, cpus=16, gpus=1),
            ActorPlan(2, 4.0, 0.5, 4),
        ),
    ],
)
def test_actor_pool_follows_flags_else_the_cluster(
    settings: RaySettings, res: Resources, want: ActorPlan
) -> None:
    assert plan_actors(settings, res) == want
