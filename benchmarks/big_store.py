"""One machine's limit: build, serve and update a compressed (ivfpq) store of millions of regions.

A store of ``--size`` regions (7 a photo: the whole photo, stored float32, and 6 objects,
stored float16 as the indexer stores them) is written straight to SQLite from the clustered
synthetic 512-d vectors of ``query_speed.py``, streamed in chunks, and cached under
``benchmarks/results/.stores``. Every phase then runs in its own child process, so that its
peak resident memory (``ru_maxrss`` from ``wait4``, spawned from a small launcher) is its own:

- **build**: ``Store.compact_vectors(kind)``, the indexer's own rebuild (for ``ivfpq``: train
  on a sample, then add every vector, both streamed from SQLite);
- **exact**: the queries (perturbed stored vectors) and their exact top 10 by a streamed
  brute-force pass over every stored vector (never all in memory);
- **serve**: a warm ``Searcher`` without a model answers ``search_vector`` (FAISS, exact
  re-ranking, SQLite join, grouping by region): p50/p95, recall@10 against exact, and the
  process's resident memory afterwards;
- **shards** (``--shards N``): the scale-out path on one machine: the ivfpq codes split into
  N shards, one Ray actor (one CPU) each on a local cluster, the driver merging and
  re-ranking; latency and agreement against the whole index in one process;
- **update**: 100 photos deleted and 100 added (700 regions) through ``Store.commit_batch``,
  the indexer's compaction check and the searcher's reload: the time a run spends outside
  the models and the file scan; then the checks (deleted regions never returned, added ones
  found, answers equal to a rebuild's, recall unchanged).

    python benchmarks/big_store.py --size 1000000 --kinds hnsw,ivfpq --shards 2   # 1M, shards
    python benchmarks/big_store.py --size 10000000 --kinds ivfpq       # the 10M rows
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REGION_INSERT,
    RESULTS_DIR,
    finish_synthetic_store,
    fmt,
    log,
    machine_info,
    markdown_table,
    percentile,
    run_own_peak,
    setup_environment,
    write_json,
)

setup_environment()

import numpy as np  # noqa: E402
from query_speed import (  # noqa: E402
    ALL_KINDS,
    LABELS,
    activate,
    cluster_centres,
    faiss_cache,
    n_clusters,
    perturb,
    recall_at,
    sample_vectors,
    synthetic_metadata,
)

REGIONS_PER_PHOTO = 7  # the whole photo + 6 objects
STORE_FORMAT = 1  # bump when the synthetic data changes, to invalidate cached stores
DIM = 512
CHUNK = 21_000  # regions per transaction (whole photos)
UPDATE_PHOTOS = 100
# (share of the codes read, candidates re-ranked) tried beside the defaults
SWEEP = (
    (0.04, 1000),
    (0.06, 1000),
    (0.08, 1000),
    (0.10, 1000),
    (0.12, 1000),
    (0.08, 500),
    (0.08, 2000),
)
WARM_CHUNK = 20  # queries warmed, then timed (see warm_top10)
GB = 1024**3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--size", type=int, default=10_000_000, help="regions in the store")
    p.add_argument("--kinds", default="ivfpq", help="index kinds to build and serve")
    p.add_argument("--queries", type=int, default=200, help="queries for latency and recall")
    p.add_argument("--query-noise", type=float, default=0.3, help="perturbation of queries")
    p.add_argument("--spread", type=float, default=1.5, help="cluster spread of the vectors")
    p.add_argument("--no-update", action="store_true", help="skip the update phase")
    p.add_argument(
        "--shards",
        type=int,
        default=0,
        help="also search the ivfpq store split into this many shards over a local Ray cluster",
    )
    p.add_argument(
        "--no-rebuild-check",
        action="store_true",
        help="skip comparing the updated store's answers with a rebuild's (a full fill)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stores", default=str(RESULTS_DIR / ".stores"), help="store cache folder")
    p.add_argument("--output", default=None, help="JSON results (default: by size)")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # a child's job
    args = p.parse_args(argv)
    args.kind_list = [k for k in args.kinds.split(",") if k]
    if not args.kind_list or not set(args.kind_list) <= set(ALL_KINDS):
        p.error(f"--kinds takes {', '.join(ALL_KINDS)}, comma-separated (got {args.kinds!r})")
    if args.size < 10_000:
        p.error("--size must be at least 10,000 regions (the queries and the update need them)")
    if args.shards and (args.shards < 2 or "ivfpq" not in args.kind_list):
        p.error("--shards needs 2 or more shards and ivfpq among --kinds")
    return args


def folder_of(args: argparse.Namespace) -> Path:
    return Path(args.stores) / f"big-{args.size}-d{DIM}"


# -- phases (each in a child process) --------------------------------------------------------
def half_or_full(vectors: np.ndarray) -> list[bytes]:
    """Object blobs as the store writes them (``vector_codec.encode_vector``), vectorised."""
    from indexer.store.vector_codec import AGREEMENT

    half = vectors.astype(np.float16)
    wide = half.astype(np.float32)
    cosine = np.einsum("ij,ij->i", vectors, wide) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(wide, axis=1)
    )
    return [
        (h.tobytes() if ok else v.tobytes())
        for h, v, ok in zip(half, vectors, cosine >= AGREEMENT, strict=True)
    ]


def phase_write(args: argparse.Namespace) -> dict[str, Any]:
    """Photos and regions straight into a fresh store, ``CHUNK`` regions a transaction."""
    from indexer.store import KIND_IMAGE, KIND_OBJECT, Store
    from indexer.store.vector_codec import encode_vector

    folder = folder_of(args)
    if folder.exists():
        shutil.rmtree(folder)
    centres = cluster_centres(DIM, n_clusters(args.size, 0), args.seed)
    rng = np.random.default_rng(args.seed + 1)
    store = Store(folder, create=True)
    store.set_meta(clip_model="synthetic", embed_dim=DIM, generation=1, detector="synthetic")
    store.close()
    conn = sqlite3.connect(folder / "objsearch.db")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the B-trees' pages stay cached
    # Secondary indexes are built once at the end (a sort) instead of row by row.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('photos', 'regions')"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    for trigger in ("photo_text_insert", "photo_text_label"):  # full-text rows: built at the end
        conn.execute(f"DROP TRIGGER {trigger}")
    now = time.time()
    for start in range(0, args.size, CHUNK):
        count = min(CHUNK, args.size - start)
        vecs = sample_vectors(rng, centres, count, args.spread)
        blobs = half_or_full(vecs)
        assert blobs[1] == encode_vector(vecs[1])  # the same bytes as the store's own codec
        photo_rows, region_rows = [], []
        for j in range(count):
            region_id = start + j + 1
            photo_id = (region_id - 1) // REGIONS_PER_PHOTO + 1
            slot = (region_id - 1) % REGIONS_PER_PHOTO
            if slot == 0:
                photo_rows.append(photo_row(photo_id, now))
                whole = (region_id, photo_id, KIND_IMAGE, 0.0, 0.0, 640.0, 480.0, None, None)
                region_rows.append((*whole, vecs[j].tobytes()))  # whole photos stay float32
            else:
                x = float(40 * slot)
                label = LABELS[(region_id * 7) % len(LABELS)]
                box = (x, x, x + 200.0, x + 150.0)
                region_rows.append(
                    (region_id, photo_id, KIND_OBJECT, *box, label, 0.5 + 0.05 * slot, blobs[j])
                )
        with conn:
            conn.executemany(PHOTO_INSERT, photo_rows)
            conn.executemany(REGION_INSERT, region_rows)
        if start // CHUNK % 50 == 0:
            log(f"  wrote {start + count:,} / {args.size:,} regions")
    log("  building the secondary indexes ...")
    for _, sql in indexes:
        conn.execute(sql)
    conn.commit()
    finish_synthetic_store(conn)
    return {"regions": args.size, "photos": -(-args.size // REGIONS_PER_PHOTO)}


PHOTO_INSERT = (
    "INSERT INTO photos (id, path, size, mtime_ns, width, height, content_hash, caption, "
    "indexed_at, taken_at, date_source, camera, gps_lat, gps_lon) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def photo_row(photo_id: int, now: float) -> tuple:
    return (
        photo_id,
        f"/synthetic/{photo_id // 1000:05d}/IMG_{photo_id:07d}.jpg",
        250_000 + photo_id % 1000,
        1_700_000_000_000_000_000 + photo_id,
        640,
        480,
        f"{photo_id:032x}",
        "this image contains synthetic objects",
        now,
        *synthetic_metadata(photo_id),
    )


def phase_build(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The indexer's own rebuild of the main segment, kept as ``vectors-<kind>.faiss``."""
    from indexer.store import Store

    folder = folder_of(args)
    with Store(folder) as store:
        if os.path.lexists(store.faiss_path):
            os.unlink(store.faiss_path)  # no quantizers to reuse: train from scratch
        index = store.compact_vectors(kind)
        count = index.ntotal
    os.replace(folder / "vectors.faiss", faiss_cache(folder, kind))
    return {"count": count, "faiss_bytes": os.path.getsize(faiss_cache(folder, kind))}


def object_vectors(folder: Path, chunk: int = 50_000) -> Any:
    """(ids, vectors) of every object region in id order, ``chunk`` at a time."""
    from indexer.store import KIND_OBJECT
    from indexer.store.vector_codec import decode_vectors

    last = 0
    with sqlite3.connect(folder / "objsearch.db") as conn:
        while True:
            rows = conn.execute(
                "SELECT id, vector FROM regions WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
                (KIND_OBJECT, last, chunk),
            ).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], np.int64)
            yield ids, decode_vectors([r[1] for r in rows], DIM)
            last = int(ids[-1])


def streamed_top10(folder: Path, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 object region ids of each query by a pass over every stored vector
    (what ``search_vector(..., group="object")`` ranks)."""
    best_ids = np.full((len(queries), 10), -1, np.int64)
    best = np.full((len(queries), 10), -np.inf, np.float32)
    for ids, vecs in object_vectors(folder):
        scores = queries @ vecs.T
        all_scores = np.concatenate([best, scores], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argpartition(-all_scores, 10, axis=1)[:, :10]
        best = np.take_along_axis(all_scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    return np.take_along_axis(best_ids, order, axis=1)


def phase_exact(args: argparse.Namespace) -> dict[str, Any]:
    """Queries (perturbed stored vectors) and their exact top 10, saved beside the store."""
    from indexer.store import Store

    rng = np.random.default_rng(args.seed + 2)
    folder = folder_of(args)
    with sqlite3.connect(folder / "objsearch.db") as conn:
        sql = "SELECT id FROM regions WHERE kind = 'object'"
        objects = np.array([r[0] for r in conn.execute(sql)], np.int64)
    chosen = np.sort(rng.choice(objects, args.queries, replace=False))
    with Store(folder) as store:
        _, stored = store.vectors_of(chosen)
    queries = perturb(rng, stored, args.query_noise).astype(np.float32)
    exact = streamed_top10(folder, queries)
    np.savez(folder_of(args) / "exact.npz", queries=queries, exact=exact)
    return {"queries": len(queries)}


def timed_top10(
    answer: Callable[[np.ndarray], Sequence[int]], queries: np.ndarray
) -> tuple[list[float], np.ndarray]:
    """Per-query milliseconds of ``answer`` (a query's top region ids) and the top 10 found."""
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        ids = list(answer(q))[:10]
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids + [-1] * (10 - len(ids)))
    return times, np.array(found, np.int64)


def warm_top10(
    answer: Callable[[np.ndarray], Sequence[int]], queries: np.ndarray
) -> tuple[list[float], np.ndarray]:
    """:func:`timed_top10` of a warm server: each chunk of WARM_CHUNK queries runs once
    untimed, then again timed.

    Chunks, not one pass over all queries before the timed one: this machine's kernel pages
    out file pages that no process maps after about a minute untouched (DAMON), which is
    where SQLite's pages sit; a cold first pass over 200 queries takes longer than that,
    and the timed pass then read part of the database from disk again.
    """
    times, found = [], []
    for start in range(0, len(queries), WARM_CHUNK):
        chunk = queries[start : start + WARM_CHUNK]
        timed_top10(answer, chunk)
        chunk_times, chunk_found = timed_top10(answer, chunk)
        times += chunk_times
        found.append(chunk_found)
    return times, np.concatenate(found) if found else np.zeros((0, 10), np.int64)


def search_answer(searcher: Any) -> Callable[[np.ndarray], Sequence[int]]:
    """A query vector -> the region ids ``search_vector`` returns (objects, top 10)."""
    return lambda q: [h.region_id for h in searcher.search_vector(q, 10, group="object")]


def serve_times(searcher: Any, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Per-query ``search_vector`` milliseconds and the top-10 region ids found (one pass)."""
    return timed_top10(search_answer(searcher), queries)


def rss_now() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def phase_serve(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """A cold pass over the queries, then a warm one (:func:`warm_top10`), the one reported."""
    from retrieval.search import Searcher

    folder = folder_of(args)
    activate(folder, kind)
    saved = np.load(folder / "exact.npz")
    queries, exact = saved["queries"], saved["exact"]
    rss0 = rss_now()
    t = time.perf_counter()
    searcher = Searcher(folder, load_encoder=False)
    searcher.vectors  # noqa: B018 - load now
    load_s = time.perf_counter() - t
    first, _ = serve_times(searcher, queries)  # pages come in: the cold-cache pass
    times, found = warm_top10(search_answer(searcher), queries)
    result = {
        "load_s": load_s,
        "first_pass_p50_ms": percentile(first, 50),
        "first_pass_p95_ms": percentile(first, 95),
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "recall_at_10": recall_at(found, exact),
        "rss_bytes": rss_now(),
        "rss_index_bytes": rss_now() - rss0,
    }
    searcher.close()
    if kind == "ivfpq":
        result["sweep"] = scan_sweep(folder, queries, exact)
    return result


def scan_sweep(folder: Path, queries: np.ndarray, exact: np.ndarray) -> list[dict[str, Any]]:
    """Recall and warm latency of the compressed index at other scan shares and candidates."""
    from indexer.store.vectors import IndexParams
    from retrieval.search import Searcher

    rows = []
    for share, candidates in SWEEP:
        params = IndexParams(ivfpq_scan=share, ivfpq_candidates=candidates)
        with Searcher(folder, load_encoder=False, params=params) as s:
            times, found = warm_top10(search_answer(s), queries)
        rows.append(
            {
                "scan": share,
                "candidates": candidates,
                "p50_ms": percentile(times, 50),
                "p95_ms": percentile(times, 95),
                "recall_at_10": recall_at(found, exact),
            }
        )
        log(f"  scan {share}, {candidates} candidates: {rows[-1]}")
    return rows


def vector_times(search: Any, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """:func:`warm_top10` of a vector search (candidates + exact re-ranking), one query at a
    time."""

    def top10(q: np.ndarray) -> Sequence[int]:
        return search(q[None, :], 10)[1][0].tolist()

    return warm_top10(top10, queries)


def phase_shards(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The scale-out path, on one machine: the store's codes split into ``--shards`` shards,
    one Ray actor each (one CPU each), against the whole index in one process, same queries."""
    import logging

    import ray

    from indexer.store import Store
    from indexer.store.shards import write_shards
    from retrieval.search.sharded import RayShardedSearch

    folder = folder_of(args)
    activate(folder, kind)
    queries = np.load(folder / "exact.npz")["queries"]
    shard_dir = folder / "shards"
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with Store(folder) as store:
        t = time.perf_counter()
        shard_set = write_shards(store, args.shards, shard_dir)
        write_s = time.perf_counter() - t
        whole, _ = store.load_vectors()
        one_times, one_found = vector_times(whole.search, queries)
        ray.init(
            address="local",
            num_cpus=args.shards,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        try:
            with RayShardedSearch(store, shard_set) as sharded:
                times, found = vector_times(sharded.search, queries)
        finally:
            ray.shutdown()
    shutil.rmtree(shard_dir, ignore_errors=True)
    return {
        "shards": args.shards,
        "write_s": write_s,
        "one_p50_ms": percentile(one_times, 50),
        "one_p95_ms": percentile(one_times, 95),
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "same_as_one": float(np.mean(np.all(found == one_found, axis=1))),
    }


def phase_update(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """Delete and add ``UPDATE_PHOTOS`` photos as an indexer run would, then check answers."""
    from indexer.store import KIND_IMAGE, KIND_OBJECT
    from indexer.store.live import compaction_reason
    from indexer.store.records import NewPhoto, NewRegion
    from retrieval.search import Searcher

    folder = folder_of(args)
    activate(folder, kind)
    saved = np.load(folder / "exact.npz")
    queries = saved["queries"]
    rng = np.random.default_rng(args.seed + 3)
    searcher = Searcher(folder, load_encoder=False)
    store = searcher.store
    with sqlite3.connect(folder / "objsearch.db") as conn:
        photo_ids = np.array([r[0] for r in conn.execute("SELECT id FROM photos")], np.int64)
        gone = rng.choice(photo_ids, UPDATE_PHOTOS, replace=False)
        marks = ",".join("?" * len(gone))
        sql = f"SELECT id FROM regions WHERE photo_id IN ({marks}) ORDER BY id"
        gone_regions = np.array([r[0] for r in conn.execute(sql, gone.tolist())], np.int64)
    _, gone_vectors = store.vectors_of(gone_regions)
    centres = cluster_centres(DIM, n_clusters(args.size, 0), args.seed)
    new_vectors = sample_vectors(rng, centres, UPDATE_PHOTOS * REGIONS_PER_PHOTO, args.spread)
    new = []
    for i in range(UPDATE_PHOTOS):
        vecs = new_vectors[i * REGIONS_PER_PHOTO : (i + 1) * REGIONS_PER_PHOTO]
        regions = [NewRegion(KIND_IMAGE, (0.0, 0.0, 640.0, 480.0), vecs[0])]
        regions += [NewRegion(KIND_OBJECT, (9.0, 9.0, 99.0, 99.0), v, "cup", 0.8) for v in vecs[1:]]
        new.append(
            NewPhoto(f"/added/IMG_{i:04d}.jpg", 1000 + i, i, 640, 480, f"{i:x}", "", regions)
        )
    searcher.search_vector(queries[0], 10)  # warm
    t = time.perf_counter()
    changes = store.commit_batch(new, remove_photo_ids=gone.tolist())
    reason = compaction_reason(store.vector_status(), kind, final=True)
    serve_times(searcher, queries[:1])  # the reload happens in the first search
    update_s = time.perf_counter() - t
    _, found = serve_times(searcher, queries)
    near_gone = perturb(rng, gone_vectors, 0.05).astype(np.float32)
    _, found_near_gone = serve_times(searcher, near_gone)
    objects = np.arange(len(new_vectors)) % REGIONS_PER_PHOTO != 0  # not the whole photos
    new_vectors = new_vectors[objects]
    added_objects = changes.added_ids[objects]
    _, found_new = serve_times(searcher, new_vectors)
    result: dict[str, Any] = {
        "update_s": update_s,
        "added": len(changes.added_ids),
        "removed": len(changes.removed_ids),
        "compaction": reason,
        "deleted_returned": int(np.isin(found_near_gone, gone_regions).sum()),
        "added_found_first": float(np.mean(found_new[:, 0] == added_objects)),
        "recall_at_10": recall_at(found, streamed_top10(folder, queries)),
    }
    query_sets = (queries, new_vectors, near_gone)
    before = [serve_times(searcher, qs)[1] for qs in query_sets]
    searcher.close()
    if not args.no_rebuild_check:
        result.update(rebuild_agreement(folder, kind, query_sets, before))
    return result


def rebuild_agreement(
    folder: Path, kind: str, query_sets: tuple[np.ndarray, ...], before: list[np.ndarray]
) -> dict[str, Any]:
    """Answers of the updated store against a rebuild's (its main segment compacted)."""
    from indexer.store import Store
    from retrieval.search import Searcher

    t = time.perf_counter()
    with Store(folder) as store:
        store.compact_vectors(kind)  # the quantizers of the current file are reused
    rebuild_s = time.perf_counter() - t
    with Searcher(folder, load_encoder=False) as searcher:
        after = [serve_times(searcher, qs)[1] for qs in query_sets]
    same = [float(np.mean(np.all(a == b, axis=1))) for a, b in zip(before, after, strict=True)]
    return {"rebuild_s": rebuild_s, "same_as_rebuild": same}


PHASES = {"write": phase_write, "exact": phase_exact}
KIND_PHASES = {
    "build": phase_build,
    "serve": phase_serve,
    "shards": phase_shards,
    "update": phase_update,
}


def run_child(args: argparse.Namespace, phase: str, kind: str | None = None) -> dict[str, Any]:
    """Run one phase in a child process: its result, wall time and peak resident memory."""
    out = folder_of(args).parent / f".phase-{os.getpid()}.json"
    cmd = [sys.executable, __file__, *sys.argv[1:], "--phase", f"{phase}:{kind or ''}:{out}"]
    log(f"{phase}{' ' + kind if kind else ''} ...")
    run = run_own_peak(cmd, capture=False)
    if run.returncode != 0:
        raise SystemExit(f"the {phase} phase failed (exit {run.returncode})")
    result = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    result.update(seconds=run.wall_s, peak_rss_bytes=int(run.peak_rss_mib * 1024**2))
    log(f"  {phase}: {run.wall_s:.1f} s, peak RSS {run.peak_rss_mib / 1024:.2f} GiB: {result}")
    return result


def child(args: argparse.Namespace) -> None:
    phase, kind, out = args.phase.split(":", 2)
    result = KIND_PHASES[phase](args, kind) if kind else PHASES[phase](args)
    Path(out).write_text(json.dumps(result), encoding="utf-8")


def folder_bytes(folder: Path) -> int:
    """What an index folder holds: the database, its WAL and the active FAISS file."""
    names = ("objsearch.db", "objsearch.db-wal", "vectors.faiss")
    return sum((folder / n).stat().st_size for n in names if (folder / n).exists())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.phase:
        child(args)
        return
    folder = folder_of(args)
    folder.parent.mkdir(parents=True, exist_ok=True)
    info_path = folder / "bench.json"
    wanted = {"format": STORE_FORMAT, "size": args.size, "seed": args.seed, "spread": args.spread}
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if any(info.get(k) != v for k, v in wanted.items()):
        info = {**wanted, "write": run_child(args, "write"), "build": {}}
        info_path.write_text(json.dumps(info, indent=2))
    for kind in args.kind_list:
        if kind not in info["build"] or not faiss_cache(folder, kind).is_file():
            info["build"][kind] = run_child(args, "build", kind)
            info_path.write_text(json.dumps(info, indent=2))
    if "exact" not in info or info.get("updated") or info["exact"]["queries"] != args.queries:
        info["exact"] = run_child(args, "exact")
        info["updated"] = False
        info_path.write_text(json.dumps(info, indent=2))
    results: dict[str, Any] = {"machine": machine_info(), "store": info, "serve": {}}
    for kind in args.kind_list:
        results["serve"][kind] = run_child(args, "serve", kind)
        activate(folder, kind)
        results["serve"][kind]["folder_bytes"] = folder_bytes(folder)
    if args.shards and "ivfpq" in args.kind_list:
        results["shards"] = run_child(args, "shards", "ivfpq")
    if not args.no_update and "ivfpq" in args.kind_list:
        info["updated"] = True  # the store changes: exact answers are recomputed next time
        info_path.write_text(json.dumps(info, indent=2))
        results["update"] = run_child(args, "update", "ivfpq")
    output = args.output or RESULTS_DIR / f"big_store-{args.size}.json"
    write_json(output, results)
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    store = results["store"]
    rows = []
    for kind, served in results["serve"].items():
        built = store["build"][kind]
        rows.append(
            [
                f"{store['size']:,}",
                kind,
                fmt(built["seconds"] / 60, 1),
                fmt(built["peak_rss_bytes"] / GB),
                fmt(served["folder_bytes"] / GB),
                fmt(served["rss_bytes"] / GB),
                f"{fmt(served['p50_ms'], 1)} / {fmt(served['p95_ms'], 1)}",
                fmt(served["recall_at_10"], 3),
            ]
        )
    print(
        markdown_table(
            [
                "regions",
                "kind",
                "build min",
                "build peak RSS GiB",
                "folder GiB",
                "serving RSS GiB",
                "query p50 / p95 ms",
                "recall@10",
            ],
            rows,
        )
    )
    write = store["write"]
    print(
        f"\nSQLite written in {write['seconds'] / 60:.1f} min, peak RSS "
        f"{write['peak_rss_bytes'] / GB:.2f} GiB"
    )
    if "shards" in results:
        sh = results["shards"]
        print(
            f"vector search (candidates + exact re-ranking), one process vs {sh['shards']} Ray "
            f"shards: p50/p95 {sh['one_p50_ms']:.1f} / {sh['one_p95_ms']:.1f} ms vs "
            f"{sh['p50_ms']:.1f} / {sh['p95_ms']:.1f} ms; the same top 10 for "
            f"{sh['same_as_one']:.1%} of queries; shards written in {sh['write_s']:.1f} s"
        )
    if "update" in results:
        up = results["update"]
        print(
            f"update ({UPDATE_PHOTOS} photos deleted + {UPDATE_PHOTOS} added, "
            f"{up['added']} regions in, {up['removed']} out): {up['update_s']:.2f} s; "
            f"compaction: {up['compaction']}; deleted returned: {up['deleted_returned']}; "
            f"added found first: {up['added_found_first']:.3f}; recall@10 after: "
            f"{up['recall_at_10']:.3f}; same as rebuild: {up.get('same_as_rebuild')}"
        )


if __name__ == "__main__":
    main()
