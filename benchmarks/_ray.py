"""Ray against the local pipeline, and the driver's commit rate (used by index_speed.py --ray).

Both pipelines index two folder sizes into a fresh index each; the marginal rate
``(n2 - n1) / (t2 - t1)`` is the steady photos/s with start-up cancelled out, and the
intercept ``t1 - n1 / rate`` is the start-up a run pays (model loading, and for Ray the actor
start). Starting the Ray cluster itself is timed on its own. The commit rate is the driver's
ceiling: SQLite rows (photos + regions with 512-d vectors) per second through
``Store.commit_batch``, the single writer every Ray run funnels into.
"""

from __future__ import annotations

import tempfile
import time
from argparse import Namespace
from typing import Any

import numpy as np


def _timed_index(make: Any, photos: list[str]) -> tuple[float, Any]:
    with tempfile.TemporaryDirectory(prefix="objsearch-bench-") as index_dir:
        indexer = make(index_dir)
        t = time.perf_counter()
        stats = indexer.index(photos)
        seconds = time.perf_counter() - t
        if stats.failures:
            raise SystemExit(f"error: {stats.failures} photo(s) failed: {stats.failed[:3]}")
        store_s = float(indexer.timings.get("store", 0.0))
        workers = dict(getattr(indexer, "ray_workers", {}) or {})
    return seconds, {"stats": stats.to_dict(), "store_s": store_s, "workers": workers}


def marginal(sizes: tuple[int, int], seconds: tuple[float, float]) -> tuple[float, float]:
    """(photos/s between the two sizes, start-up seconds: the intercept at zero photos)."""
    (n1, n2), (t1, t2) = sizes, seconds
    rate = (n2 - n1) / (t2 - t1) if t2 > t1 else float("inf")
    return rate, t1 - n1 / rate


def run_ray_comparison(args: Namespace, photos: list[str], repeats: int = 2) -> dict[str, Any]:
    """Index ``photos[:n1]`` and ``photos[:n2]`` locally and on Ray; see the module doc."""
    from _common import load_models

    from indexer import DetectOptions, Indexer
    from indexer.indexing.ray_cluster import Cluster
    from indexer.media.decode import read_photo
    from indexer.settings import RaySettings

    n2 = len(photos)
    n1 = max(1, n2 // 3)
    sizes = (n1, n2)
    common = {
        "clip_model": args.clip_model,
        "detector_weights": args.detector,
        "device": args.device,
        "precision": args.precision,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "embed_batch_size": args.embed_batch_size,
    }

    t = time.perf_counter()
    embedder, detector = load_models(args)
    local_load_s = time.perf_counter() - t
    warm = read_photo(photos[0]).image
    detector.detect([warm], DetectOptions())
    embedder.embed_images([warm])

    def local(index_dir: str) -> Any:
        return Indexer(
            index_dir, **common, workers=args.workers, embedder=embedder, detector=detector
        )

    settings = RaySettings(address=args.ray)
    cluster = Cluster(settings.address)
    t = time.perf_counter()
    with cluster:
        ray_start_s = time.perf_counter() - t
        resources = cluster.resources()

        def on_ray(index_dir: str) -> Any:
            return Indexer(index_dir, **common, ray=settings)

        # Interleaved and best of ``repeats``: on a shared machine the load drifts, and a
        # slow spell must not land on one pipeline only.
        best_local: dict[int, tuple[float, Any]] = {}
        best_ray: dict[int, tuple[float, Any]] = {}
        for _ in range(repeats):
            for n in sizes:
                for best, make in ((best_local, local), (best_ray, on_ray)):
                    run = _timed_index(make, photos[:n])
                    if n not in best or run[0] < best[n][0]:
                        best[n] = run
    local_runs = [best_local[n] for n in sizes]
    ray_runs = [best_ray[n] for n in sizes]
    local_rate, local_startup = marginal(sizes, (local_runs[0][0], local_runs[1][0]))
    ray_rate, ray_startup = marginal(sizes, (ray_runs[0][0], ray_runs[1][0]))
    actors = max(1, len(ray_runs[1][1]["workers"]))
    big = ray_runs[1][1]
    photo_rows = big["stats"]["indexed"]
    region_rows = big["stats"]["indexed"] + big["stats"]["objects"]  # whole photos + objects
    return {
        "sizes": list(sizes),
        "repeats": repeats,
        "local_seconds": [r[0] for r in local_runs],
        "ray_seconds": [r[0] for r in ray_runs],
        "local_photos_per_s": local_rate,
        "ray_photos_per_s": ray_rate,
        "ray_overhead": 1.0 - ray_rate / local_rate,
        "local_startup_s": local_startup,
        "local_model_load_s": local_load_s,
        "ray_startup_s": ray_startup,
        "ray_cluster_start_s": ray_start_s,
        "ray_actors": actors,
        "ray_photos_per_s_per_actor": ray_rate / actors,
        "ray_driver_store_s": big["store_s"],
        "ray_driver_rows": photo_rows + region_rows,
        "cluster": {"nodes": resources.nodes, "cpus": resources.cpus, "gpus": resources.gpus},
        "objects": big["stats"]["objects"],
    }


def measure_commit_rate(
    photos: int = 2048, regions_per_photo: int = 6, dim: int = 512, batch: int = 16
) -> dict[str, Any]:
    """SQLite rows per second the driver commits, in batches as indexing commits them."""
    from indexer.store import Store
    from indexer.store.records import NewPhoto, NewRegion

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((photos * regions_per_photo, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = []
    for i in range(photos):
        regions = [
            NewRegion(
                "image" if j == 0 else "object",
                (0.0, 0.0, 640.0, 480.0) if j == 0 else (10.0 * j, 20.0, 100.0 + j, 200.0),
                vectors[i * regions_per_photo + j],
                None if j == 0 else "cat",
                None if j == 0 else 0.9,
            )
            for j in range(regions_per_photo)
        ]
        records.append(
            NewPhoto(f"/photos/{i:07d}.jpg", 1000 + i, i, 640, 480, f"{i:032x}", "", regions)
        )
    with tempfile.TemporaryDirectory(prefix="objsearch-commit-") as index_dir:
        store = Store(index_dir, create=True)
        try:
            store.lock()
            t = time.perf_counter()
            for start in range(0, photos, batch):
                store.commit_batch(records[start : start + batch], [])
            seconds = time.perf_counter() - t
        finally:
            store.close()
    rows = photos * (1 + regions_per_photo)
    return {
        "photos": photos,
        "regions_per_photo": regions_per_photo,
        "batch": batch,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "photos_per_s": photos / seconds,
    }
