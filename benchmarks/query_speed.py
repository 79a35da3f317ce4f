"""Query latency and recall of objsearch stores of 10k to 1M regions (synthetic vectors).

For each size a store is written straight to SQLite (photos with 1 whole-photo + 4 object
regions each, clustered random unit vectors), then one FAISS file per index kind (flat, hnsw,
ivf) is built with ``Store.rebuild_vectors`` and cached under ``benchmarks/results/.stores``.
For each size and kind it measures FAISS alone (k=100), recall@10 against exact search,
``Searcher.search_vector`` (FAISS + SQLite join + grouping) and ``Searcher.search(text=...)``
end to end with a random ViT-B/32 CLIP (distinct texts, then the same texts cached). At the
largest size it sweeps HNSW ``efSearch`` and IVF ``nprobe``. At 10k regions it also times the
cold-CLI row: whole ``objsearch search "a dog" --index I`` processes (see ``_cold.py``).

    python benchmarks/query_speed.py --sizes 10000          # quick, under a minute
    python benchmarks/query_speed.py --sizes 10000 --cold-only   # the cold-CLI row alone
    python benchmarks/query_speed.py                        # 10k, 100k, 1M
    python benchmarks/query_speed.py --incremental          # small runs on a 1M store
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sqlite3
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from indexer.settings import configure_ultralytics  # noqa: E402

configure_ultralytics()  # offline and quiet, before anything imports ultralytics

from _cold import measure_cold, print_cold  # noqa: E402
from _common import (  # noqa: E402
    DEFAULT_DETECTOR,
    REGION_INSERT,
    RESULTS_DIR,
    ensure_clip_model,
    finish_synthetic_store,
    fmt,
    log,
    machine_info,
    markdown_table,
    percentile,
    setup_environment,
    write_json,
)

setup_environment()

import numpy as np  # noqa: E402

KINDS = ("flat", "hnsw", "ivf")
ALL_KINDS = (*KINDS, "ivfpq")  # the compressed kind on request (--kinds hnsw,ivfpq)
REGIONS_PER_PHOTO = 5  # 1 whole photo + 4 objects
STORE_FORMAT = 3  # bump when the synthetic data changes, to invalidate cached stores
LABELS = ("person", "cat", "dog", "car", "chair", "cup", "bottle", "potted plant", "tv", "book")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ATTRS = _words(
    "red green blue yellow orange purple pink brown black white grey dark bright small big "
    "large tiny old new young happy sleeping running sitting standing flying wooden metal "
    "plastic round square striped fluffy cute"
)
_NOUNS = _words(
    "cat dog person car bicycle bus train boat bird horse sheep cow elephant bear zebra "
    "giraffe umbrella bag tie suitcase kite bottle cup fork knife spoon bowl banana apple "
    "sandwich orange pizza cake chair couch plant bed table laptop phone clock vase book "
    "flowerpot butterfly kitten puppy tree house street beach mountain river window lamp"
)
_PLACES = _words("kitchen garden street beach park room field city table sofa")


# -- arguments -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sizes", default="10000,100000,1000000", help="regions per store")
    p.add_argument("--kinds", default=",".join(KINDS), help="FAISS index kinds to measure")
    p.add_argument(
        "--clip-model",
        default=None,
        help="CLIP folder or hub id for text queries; default: a random ViT-B/32 cached in "
        "benchmarks/results/.clip-vitb32",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--precision",
        default=None,
        choices=("auto", "fp32", "bf16", "fp16"),
        help="CLIP precision for text encoding (default: what Searcher uses, i.e. auto)",
    )
    p.add_argument(
        "--backend",
        default=None,
        choices=("auto", "torch", "openvino"),
        help="inference backend for text encoding (default: what Searcher uses, i.e. auto)",
    )
    p.add_argument("--queries", type=int, default=200, help="vector queries for recall")
    p.add_argument(
        "--latency-queries",
        type=int,
        default=100,
        help="queries timed one at a time (FAISS alone: best of 2 rounds per query)",
    )
    p.add_argument("--text-queries", type=int, default=40, help="distinct text queries")
    p.add_argument("--k", type=int, default=100, help="neighbours for FAISS-alone latency")
    p.add_argument("--top-k", type=int, default=10, help="results per Searcher query")
    p.add_argument("--ef-search", default="32,64,96,128,256,512", help="HNSW efSearch sweep")
    p.add_argument("--nprobe", default="16,32,64,128,256", help="IVF nprobe sweep")
    p.add_argument(
        "--sweep-size",
        type=int,
        default=0,
        help="store size for the sweeps (default: the largest of --sizes; 0 = largest)",
    )
    p.add_argument("--clusters", type=int, default=0, help="mixture components (0 = auto)")
    p.add_argument(
        "--spread",
        type=float,
        default=1.5,
        help="noise around each cluster centre, relative to the centre's unit length",
    )
    p.add_argument("--query-noise", type=float, default=0.3, help="perturbation of queries")
    p.add_argument(
        "--faiss-threads",
        type=int,
        default=0,
        help="OpenMP threads for FAISS while measuring queries (0 = FAISS default, all cores); "
        "builds always use the default",
    )
    p.add_argument(
        "--torch-threads", type=int, default=0, help="torch threads for text encoding (0 = default)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stores", default=str(RESULTS_DIR / ".stores"), help="store cache folder")
    p.add_argument("--rebuild", action="store_true", help="rebuild cached stores")
    p.add_argument(
        "--filter-fraction",
        type=float,
        default=0.01,
        help="share of photos the filtered query keeps (an --after/--before date window)",
    )
    p.add_argument("--no-filtered", action="store_true", help="skip the filtered-query rows")
    p.add_argument("--filtered-only", action="store_true", help="measure only the filtered queries")
    p.add_argument(
        "--dup-photos",
        default="10000,30000,100000",
        help="photo counts of the synthetic stores for the duplicates cost ('' = skip)",
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="measure only the incremental-update row: index runs that change, add and "
        "delete photos in a big store (see benchmarks/_incremental.py)",
    )
    p.add_argument("--incremental-size", type=int, default=1_000_000, help="regions")
    p.add_argument("--incremental-photos", type=int, default=100, help="photos per run")
    p.add_argument(
        "--incremental-kind",
        default="hnsw",
        choices=("hnsw", "flat"),
        help="FAISS type of the main segment (flat: the check compares with a fresh rebuild)",
    )
    p.add_argument("--detector", default=str(DEFAULT_DETECTOR), help="YOLO weights")
    cold = p.add_mutually_exclusive_group()
    cold.add_argument(
        "--cold-cli",
        action="store_true",
        help="time whole `objsearch search` processes (on by default when --sizes has 10000; "
        "forced on, it uses the smallest size)",
    )
    cold.add_argument("--no-cold-cli", action="store_true", help="skip the cold-CLI row")
    p.add_argument("--cold-only", action="store_true", help="measure only the cold-CLI row")
    p.add_argument("--cold-runs", type=int, default=5, help="timed cold-CLI processes")
    p.add_argument("--output", default=str(RESULTS_DIR / "query_speed.json"))
    args = p.parse_args(argv)
    args.size_list = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    args.kind_list = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in args.kind_list if k not in ALL_KINDS]
    if bad:
        p.error(f"unknown kind(s) {', '.join(bad)}: use {', '.join(ALL_KINDS)}")
    if any(s < 1000 for s in args.size_list):
        p.error("sizes must be at least 1000 regions")
    args.ef_list = [int(x) for x in args.ef_search.split(",") if x.strip()]
    args.nprobe_list = [int(x) for x in args.nprobe.split(",") if x.strip()]
    args.dup_list = [int(float(x)) for x in args.dup_photos.split(",") if x.strip()]
    args.cold_size = cold_size(args)
    if args.cold_only:
        if args.cold_size is None:
            p.error("--cold-only needs the cold-CLI row: add 10000 to --sizes or pass --cold-cli")
        args.size_list, args.no_filtered, args.dup_list = [args.cold_size], True, []
    return args


COLD_SIZE = 10_000  # the store size of the cold-CLI row (issue target: 10k regions)


def cold_size(args: argparse.Namespace) -> int | None:
    """The store size the cold-CLI row runs on, or None when it is off."""
    if args.no_cold_cli:
        return None
    if COLD_SIZE in args.size_list:
        return COLD_SIZE
    return min(args.size_list) if args.cold_cli else None


# -- synthetic data ------------------------------------------------------------------------
def n_clusters(size: int, requested: int) -> int:
    return requested if requested > 0 else int(max(32, min(4096, size // 250)))


def cluster_centres(dim: int, count: int, seed: int) -> np.ndarray:
    """Unit centres drawn with the same decaying spectrum as the noise, so clusters overlap
    (well-separated clusters would make IVF look perfect at any nprobe)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count, dim)).astype(np.float32) * noise_spectrum(dim)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def noise_spectrum(dim: int) -> np.ndarray:
    """Per-dimension noise scale with a power-law decay (unit mean square).

    Real CLIP embeddings spread their variance over a few dozen directions rather than
    evenly over all 512; an isotropic mixture would be an unrealistically hard ANN case.
    """
    spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -0.5
    return (spectrum / np.sqrt(np.mean(spectrum**2))).astype(np.float32)


def sample_vectors(
    rng: np.random.Generator, centres: np.ndarray, count: int, spread: float
) -> np.ndarray:
    """``count`` unit vectors from the mixture: centre + anisotropic gaussian noise."""
    dim = centres.shape[1]
    which = rng.integers(0, len(centres), size=count)
    noise = rng.standard_normal((count, dim), dtype=np.float32)
    noise *= noise_spectrum(dim) * (spread / np.sqrt(dim))
    vectors = centres[which] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def perturb(rng: np.random.Generator, vectors: np.ndarray, amount: float) -> np.ndarray:
    dim = vectors.shape[1]
    noise = rng.standard_normal(vectors.shape, dtype=np.float32)
    noise *= noise_spectrum(dim) * (amount / np.sqrt(dim))
    out = vectors + noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def distinct_texts(count: int, offset: int) -> list[str]:
    """Query strings never used before in this run (so the text cache cannot answer)."""
    out = []
    i = offset
    while len(out) < count:
        a = _ATTRS[i % len(_ATTRS)]
        n = _NOUNS[(i // len(_ATTRS)) % len(_NOUNS)]
        place = _PLACES[(i // (len(_ATTRS) * len(_NOUNS))) % len(_PLACES)]
        out.append(f"a {a} {n} in the {place}")
        i += 1
    return out


# -- building stores -----------------------------------------------------------------------
DATE_SPAN_DAYS = 20 * 365
CAMERAS = ("Canon EOS 5D", "Apple iPhone 15", "NIKON D750", "Sony ILCE-7M3")


def synthetic_metadata(photo_id: int) -> tuple[str, str, str, float, float]:
    """(taken_at, date_source, camera, lat, lon) spread pseudo-randomly over 20 years, so a
    date window selects photos scattered through the store, not one contiguous block."""
    mix = (photo_id * 2654435761) % 2**32
    day, second = mix % DATE_SPAN_DAYS, (mix // DATE_SPAN_DAYS) % 86_400
    taken = datetime(2005, 1, 1) + timedelta(days=day, seconds=second)
    lat = -60.0 + (mix % 12_000) / 100.0
    lon = -180.0 + (mix // 12_000 % 36_000) / 100.0
    return taken.isoformat(), "exif-original", CAMERAS[mix % len(CAMERAS)], lat, lon


def date_window(fraction: float, shift: int = 0) -> tuple[str, str]:
    """An --after/--before window holding about ``fraction`` of the synthetic photos."""
    start = datetime(2005, 1, 1) + timedelta(days=DATE_SPAN_DAYS // 3 + shift)
    end = start + timedelta(days=max(1, round(DATE_SPAN_DAYS * fraction)))
    return start.date().isoformat(), end.date().isoformat()


def store_dir(args: argparse.Namespace, size: int, dim: int) -> Path:
    return Path(args.stores) / f"regions-{size}-d{dim}"


def faiss_cache(folder: Path, kind: str) -> Path:
    return folder / f"vectors-{kind}.faiss"


def write_store(folder: Path, size: int, embedder: Any, args: argparse.Namespace) -> dict:
    """Write photos + regions straight into a fresh objsearch SQLite store."""
    from indexer.store import KIND_IMAGE, KIND_OBJECT, Store

    if folder.exists():
        shutil.rmtree(folder)
    dim = embedder.dim
    clusters = n_clusters(size, args.clusters)
    centres = cluster_centres(dim, clusters, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    t0 = time.perf_counter()
    store = Store(folder, create=True)
    store.close()
    conn = sqlite3.connect(store.db_path)
    conn.execute("PRAGMA synchronous=OFF")
    for trigger in ("photo_text_insert", "photo_text_label"):  # full-text rows: built once below
        conn.execute(f"DROP TRIGGER {trigger}")
    photos = (size + REGIONS_PER_PHOTO - 1) // REGIONS_PER_PHOTO
    now = time.time()
    chunk = 20_000  # regions per transaction
    region_id = 0
    for start in range(0, size, chunk):
        count = min(chunk, size - start)
        vecs = sample_vectors(rng, centres, count, args.spread)
        region_rows = []
        photo_rows = []
        for j in range(count):
            region_id += 1
            photo_id = (region_id - 1) // REGIONS_PER_PHOTO + 1
            slot = (region_id - 1) % REGIONS_PER_PHOTO
            if slot == 0:
                photo_rows.append(
                    (
                        photo_id,
                        f"/synthetic/{photo_id // 1000:04d}/IMG_{photo_id:07d}.jpg",
                        250_000 + photo_id % 1000,
                        1_700_000_000_000_000_000 + photo_id,
                        640,
                        480,
                        f"{photo_id:032x}",
                        "this image contains synthetic objects",
                        now,
                        *synthetic_metadata(photo_id),
                    )
                )
                box = (0.0, 0.0, 640.0, 480.0)
                region_rows.append(
                    (region_id, photo_id, KIND_IMAGE, *box, None, None, vecs[j].tobytes())
                )
            else:
                x = float(40 * slot)
                box = (x, x, x + 200.0, x + 150.0)
                label = LABELS[(region_id * 7) % len(LABELS)]
                conf = 0.5 + 0.1 * slot
                region_rows.append(
                    (region_id, photo_id, KIND_OBJECT, *box, label, conf, vecs[j].tobytes())
                )
        with conn:
            conn.executemany(
                "INSERT INTO photos (id, path, size, mtime_ns, width, height, content_hash, "
                "caption, indexed_at, taken_at, date_source, camera, gps_lat, gps_lon) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                photo_rows,
            )
            conn.executemany(REGION_INSERT, region_rows)
    finish_synthetic_store(conn)
    seconds = time.perf_counter() - t0
    store = Store(folder)
    set_model_meta(store, embedder)
    store.set_meta(generation=1, detector="synthetic")
    store.close()
    log(f"  wrote {size:,} regions / {photos:,} photos to SQLite in {seconds:.1f} s")
    return {"sqlite_write_s": seconds, "photos": photos, "clusters": clusters}


def set_model_meta(store: Any, embedder: Any) -> None:
    """Record the query model the way the indexer does, so ``Searcher`` accepts the store."""
    store.set_meta(
        clip_model=embedder.model_id,
        embed_dim=embedder.dim,
        clip_probe=json.dumps(embedder.fingerprint().round(6).tolist()),
    )


def build_kind(folder: Path, kind: str) -> dict[str, float]:
    """``Store.rebuild_vectors(kind)`` + ``save_vectors``, kept as ``vectors-<kind>.faiss``."""
    from indexer.store import Store

    store = Store(folder)
    try:
        t = time.perf_counter()
        index = store.rebuild_vectors(kind)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        store.save_vectors(index, store.generation)
        save_s = time.perf_counter() - t
        os.replace(store.faiss_path, faiss_cache(folder, kind))
    finally:
        store.close()
    del index
    gc.collect()
    return {"build_s": build_s, "save_s": save_s}


def ensure_store(size: int, embedder: Any, args: argparse.Namespace) -> tuple[Path, dict]:
    """The cached store for ``size`` with a FAISS file per kind (built when missing)."""
    folder = store_dir(args, size, embedder.dim)
    info_path = folder / "bench.json"
    info: dict[str, Any] = {}
    if info_path.is_file() and not args.rebuild:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    wanted = {
        "format": STORE_FORMAT,
        "size": size,
        "dim": embedder.dim,
        "seed": args.seed,
        "clusters": n_clusters(size, args.clusters),
        "spread": args.spread,
    }
    if any(info.get(k) != v for k, v in wanted.items()):
        log(f"building store of {size:,} regions in {folder} ...")
        info = {**wanted, **write_store(folder, size, embedder, args), "kinds": {}}
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    else:
        from indexer.models.identity import model_mismatch
        from indexer.store import Store

        store = Store(folder)
        if model_mismatch(store.meta(), embedder):  # another query model: re-record it
            set_model_meta(store, embedder)
        store.close()
    for kind in args.kind_list:
        if kind in info["kinds"] and faiss_cache(folder, kind).is_file():
            continue
        log(f"  building {kind} index over {size:,} vectors ...")
        info["kinds"][kind] = build_kind(folder, kind)
        log(f"  {kind}: {info['kinds'][kind]['build_s']:.1f} s")
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder, info


def activate(folder: Path, kind: str) -> int:
    """Make ``vectors-<kind>.faiss`` the store's current FAISS file (a hard link)."""
    from indexer.store import Store, VectorIndex
    from indexer.store.vector_file import file_stamp

    store = Store(folder)
    try:
        src = faiss_cache(folder, kind)
        if os.path.lexists(store.faiss_path):
            os.unlink(store.faiss_path)
        try:
            os.link(src, store.faiss_path)
        except OSError:
            shutil.copyfile(src, store.faiss_path)
        size = os.path.getsize(store.faiss_path)
        held = VectorIndex.load(store.faiss_path, mapped=True)
        store.set_meta(  # the whole record, so loading vouches for this file (not the last built)
            faiss_generation=store.generation,
            faiss_bytes=size,
            faiss_kind=kind,
            faiss_stamp=file_stamp(store.faiss_path),
            faiss_max_id=int(held.ids().max()) if held.ntotal else 0,
            faiss_count=held.ntotal,
        )
    finally:
        store.close()
    return size


# -- measuring -----------------------------------------------------------------------------
def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def timed_ms(fn: Any, items: list[Any]) -> tuple[list[float], list[Any]]:
    times, outs = [], []
    for item in items:
        t = time.perf_counter()
        outs.append(fn(item))
        times.append((time.perf_counter() - t) * 1000.0)
    return times, outs


def recall_at(approx_ids: np.ndarray, exact_ids: np.ndarray, n: int = 10) -> float:
    hits = [
        len(set(a[:n].tolist()) & set(e[:n].tolist())) / n
        for a, e in zip(approx_ids, exact_ids, strict=True)
    ]
    return float(np.mean(hits))


def faiss_latency(index: Any, queries: np.ndarray, k: int, rounds: int = 2) -> list[float]:
    """Per-query latency, one query at a time as the app searches; each query's best of
    ``rounds`` passes, so a moment of CPU contention from other processes is not counted."""
    best = [float("inf")] * len(queries)
    for _ in range(rounds):
        times, _ = timed_ms(lambda q: index.search(q[None, :], k), list(queries))
        best = [min(a, b) for a, b in zip(best, times, strict=True)]
    return best


def found_ids(index: Any, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids found for all queries in one batched call (same answers as one at a time)."""
    return index.search(queries, k)[1]


def candidate_k(top_k: int) -> int:
    """How many neighbours ``Searcher.search_vector`` asks FAISS for on its first try."""
    return top_k * 8 + 32


def join_ms(store: Any, ids: np.ndarray) -> list[float]:
    """``Store.regions_with_photos`` alone (the SQLite half of a search)."""
    times, _ = timed_ms(lambda row: store.regions_with_photos(row.tolist()), list(ids))
    return times


def measure(
    folder: Path,
    kind: str,
    embedder: Any,
    queries: np.ndarray,
    exact: np.ndarray,
    args: argparse.Namespace,
    text_offset: int,
) -> dict[str, Any]:
    from retrieval.search import Searcher

    faiss_bytes = activate(folder, kind)
    rss0 = rss_bytes()
    searcher = Searcher(folder, embedder=embedder)
    try:
        t = time.perf_counter()
        index = searcher.vectors
        load_s = time.perf_counter() - t
        rss_delta = rss_bytes() - rss0
        ntotal = index.ntotal
        timed = queries[: args.latency_queries]
        ids_cand = found_ids(index, queries, candidate_k(args.top_k))
        faiss_ms = faiss_latency(index, timed, args.k)
        sv_ms, _ = timed_ms(lambda q: searcher.search_vector(q, args.top_k), list(timed))
        join = join_ms(searcher.store, ids_cand[: len(timed)])
        texts = distinct_texts(args.text_queries, text_offset)
        searcher.search(text="warm-up query that is never measured", top_k=args.top_k)
        cold_ms, _ = timed_ms(lambda s: searcher.search(text=s, top_k=args.top_k), texts)
        warm_ms, _ = timed_ms(lambda s: searcher.search(text=s, top_k=args.top_k), texts)
        db_bytes = sum(
            os.path.getsize(folder / name)
            for name in ("objsearch.db", "objsearch.db-wal")
            if (folder / name).exists()
        )
        return {
            "size": ntotal,
            "kind": kind,
            "load_s": load_s,
            "faiss_p50_ms": percentile(faiss_ms, 50),
            "faiss_p95_ms": percentile(faiss_ms, 95),
            "recall_at_10": recall_at(ids_cand, exact),
            "search_vector_p50_ms": percentile(sv_ms, 50),
            "search_vector_p95_ms": percentile(sv_ms, 95),
            "join_p50_ms": percentile(join, 50),
            "text_uncached_p50_ms": percentile(cold_ms, 50),
            "text_uncached_p95_ms": percentile(cold_ms, 95),
            "text_cached_p50_ms": percentile(warm_ms, 50),
            "text_cached_p95_ms": percentile(warm_ms, 95),
            "encode_p50_ms": percentile(cold_ms, 50) - percentile(warm_ms, 50),
            "faiss_bytes": faiss_bytes,
            "faiss_bytes_per_region": faiss_bytes / max(ntotal, 1),
            "rss_delta_bytes_per_region": rss_delta / max(ntotal, 1),
            "db_bytes": db_bytes,
            "disk_bytes_per_region": (db_bytes + faiss_bytes) / max(ntotal, 1),
        }
    finally:
        searcher.close()
        gc.collect()


def sweep(
    folder: Path,
    kind: str,
    embedder: Any,
    queries: np.ndarray,
    exact: np.ndarray,
    values: list[int],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Recall/latency for each efSearch (hnsw) or nprobe (ivf) on one loaded index."""
    from indexer.store import ivf
    from indexer.store.vectors import IndexParams, VectorIndex
    from retrieval.search import Searcher

    activate(folder, kind)
    out = []
    searcher = Searcher(folder, embedder=embedder)
    timed = queries[: args.latency_queries]
    try:
        loaded = searcher.vectors
        for value in values:
            params = (
                IndexParams(hnsw_ef_search=value)
                if kind == "hnsw"
                else IndexParams(ivf_nprobe=value)
            )
            # Re-wrapping applies the parameter to the shared FAISS object, so the searcher's
            # own queries below run with it too (checked right after).
            index = VectorIndex(loaded.main.index, kind, params)
            inner = ivf.unwrapped(searcher.vectors.main.index)
            applied = inner.hnsw.efSearch if kind == "hnsw" else inner.nprobe
            assert applied == value, (applied, value)
            ids_cand = found_ids(index, queries, candidate_k(args.top_k))
            ms_10 = faiss_latency(index, timed, 10)
            ms_k = faiss_latency(index, timed, args.k)
            sv_ms, _ = timed_ms(lambda q: searcher.search_vector(q, args.top_k), list(timed))
            out.append(
                {
                    "kind": kind,
                    "param": "efSearch" if kind == "hnsw" else "nprobe",
                    "value": value,
                    "faiss_k10_p50_ms": percentile(ms_10, 50),
                    "faiss_p50_ms": percentile(ms_k, 50),
                    "faiss_p95_ms": percentile(ms_k, 95),
                    "recall_at_10": recall_at(ids_cand, exact),
                    "search_vector_p50_ms": percentile(sv_ms, 50),
                    "search_vector_p95_ms": percentile(sv_ms, 95),
                }
            )
            log(
                f"  {kind} {out[-1]['param']}={value}: recall@10 {out[-1]['recall_at_10']:.3f}, "
                f"FAISS p50 {out[-1]['faiss_p50_ms']:.2f} ms"
            )
    finally:
        searcher.close()
        gc.collect()
    return out


def exact_neighbours(
    folder: Path, rng: np.random.Generator, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """Queries (perturbed stored vectors) and their exact top-10 region ids (flat search)."""
    from indexer.store.vectors import VectorIndex

    path = faiss_cache(folder, "flat")
    if not path.is_file():
        build_kind(folder, "flat")
    flat = VectorIndex.load(str(path))
    ids = flat.ids()
    chosen = rng.choice(ids, size=min(args.queries, len(ids)), replace=False)
    stored = np.stack([flat.index.reconstruct(int(i)) for i in chosen])
    queries = perturb(rng, stored, args.query_noise).astype(np.float32)
    _, exact = flat.index.search(queries, 10)
    del flat
    gc.collect()
    return queries, exact


# -- filtered queries and duplicates -------------------------------------------------------
def exact_filtered(
    ids: np.ndarray, photo_of: np.ndarray, vectors: np.ndarray, query: np.ndarray, top_k: int
) -> list[int]:
    """Region ids of the exact filtered answer: best region of the best ``top_k`` photos."""
    scores = vectors @ query
    seen: set[int] = set()
    out = []
    for i in np.argsort(-scores, kind="stable"):
        if photo_of[i] not in seen:
            seen.add(int(photo_of[i]))
            out.append(int(ids[i]))
            if len(out) == top_k:
                break
    return out


def measure_filtered(
    folder: Path,
    kind: str,
    embedder: Any,
    queries: np.ndarray,
    args: argparse.Namespace,
    text_offset: int,
) -> dict[str, Any]:
    """A date filter keeping ``--filter-fraction`` of photos: latency and exactness."""
    from sqlalchemy import select, text

    from indexer.store import Region
    from retrieval.search import Searcher, SearchFilters
    from retrieval.search.filters import matching_region_ids

    activate(folder, kind)
    after, before = date_window(args.filter_fraction)
    filters = SearchFilters(after=after, before=before)
    searcher = Searcher(folder, embedder=embedder)
    try:
        from indexer.store import decode_vectors

        index = searcher.vectors

        def pushed_down(_: int) -> Any:  # the SQL alone, past the searcher's filter cache
            with searcher.store.session() as s:
                return matching_region_ids(s, filters)

        sql_ms, sets = timed_ms(pushed_down, list(range(20)))
        allowed = sets[0][0]
        with searcher.store.session() as s:
            rows = []
            for start in range(0, len(allowed), 900):
                chunk = [int(i) for i in allowed[start : start + 900]]
                rows += s.execute(
                    select(Region.id, Region.photo_id, Region.vector).where(Region.id.in_(chunk))
                ).all()
            total_photos = s.execute(text("SELECT count(*) FROM photos")).scalar()
        ids = np.array([r[0] for r in rows], np.int64)
        photo_of = np.array([r[1] for r in rows], np.int64)
        vectors = decode_vectors([r[2] for r in rows], searcher.store.dim())
        timed = list(queries[: args.latency_queries])
        # A new filter for every query (windows shifted by a day: SQL runs each time) ...
        shifted = [
            SearchFilters(after=a, before=b)
            for a, b in (date_window(args.filter_fraction, shift=i + 1) for i in range(len(timed)))
        ]
        pairs = list(zip(timed, shifted, strict=True))
        cold_ms, _ = timed_ms(
            lambda qf: searcher.search_vector(qf[0], args.top_k, filters=qf[1]), pairs
        )
        # ... and the same filter again (its allowed set is cached: paging, rewording).
        sv_ms, outs = timed_ms(
            lambda q: searcher.search_vector(q, args.top_k, filters=filters), timed
        )
        identical = [
            [r.region_id for r in got] == exact_filtered(ids, photo_of, vectors, q, args.top_k)
            for q, got in zip(timed, outs, strict=True)
        ]
        full = [len(got) == args.top_k for got in outs]
        # What "search the top k, then drop" would have returned for the same queries.
        naive = []
        for q in timed:
            plain = searcher.search_vector(q, args.top_k)
            naive.append(sum(after <= (r.taken_at or "") < before for r in plain))
        texts = distinct_texts(args.text_queries, text_offset)
        searcher.search(text="warm-up query that is never measured", top_k=args.top_k)
        text_pairs = [
            (t, SearchFilters(after=a, before=b))
            for i, t in enumerate(texts)
            for a, b in [date_window(args.filter_fraction, shift=1000 + i)]
        ]
        text_ms, _ = timed_ms(
            lambda tf: searcher.search(text=tf[0], top_k=args.top_k, filters=tf[1]), text_pairs
        )
        # Text encoding alone, on strings not seen before (what text e2e spends before search).
        encode_ms, _ = timed_ms(
            embedder.embed_text, distinct_texts(args.text_queries, text_offset + args.text_queries)
        )
        return {
            "size": index.ntotal,
            "kind": kind,
            "filter": f"--after {after} --before {before}",
            "photos_kept": len(set(photo_of.tolist())),
            "photos_total": int(total_photos),
            "regions_kept": len(ids),
            "sql_p50_ms": percentile(sql_ms, 50),
            "search_vector_p50_ms": percentile(cold_ms, 50),
            "search_vector_p95_ms": percentile(cold_ms, 95),
            "same_filter_p50_ms": percentile(sv_ms, 50),
            "same_filter_p95_ms": percentile(sv_ms, 95),
            "text_p50_ms": percentile(text_ms, 50),
            "text_p95_ms": percentile(text_ms, 95),
            "encode_p50_ms": percentile(encode_ms, 50),
            "identical_to_exact": float(np.mean(identical)),
            "full_top_k": float(np.mean(full)),
            "naive_kept_mean": float(np.mean(naive)),
        }
    finally:
        searcher.close()
        gc.collect()


def write_dup_store(folder: Path, photos: int, dim: int, args: argparse.Namespace) -> list:
    """A photos-only store (one whole-photo vector each) with planted copies.

    1 % of photos get a near copy (perturbed vector, half the pixels) and 0.5 % an exact
    copy (same hash and vector). Returns the planted (original id, copy id) pairs.
    """
    from indexer.store import KIND_IMAGE, Store

    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(args.seed + 7)
    centres = cluster_centres(dim, n_clusters(photos, args.clusters), args.seed)
    vectors = sample_vectors(rng, centres, photos, args.spread)
    n_near, n_exact = photos // 100, photos // 200
    originals = rng.choice(photos - n_near - n_exact, n_near + n_exact, replace=False)
    copies = np.arange(photos - n_near - n_exact, photos)
    vectors[copies[:n_near]] = perturb(rng, vectors[originals[:n_near]], 0.1)
    vectors[copies[n_near:]] = vectors[originals[n_near:]]
    hashes = [f"{i:032x}" for i in range(photos)]
    sizes = [(640, 480)] * photos
    for orig, copy in zip(originals[n_near:], copies[n_near:], strict=True):
        hashes[copy] = hashes[orig]
    for copy in copies[:n_near]:
        sizes[copy] = (320, 240)
    store = Store(folder, create=True)
    store.close()
    conn = sqlite3.connect(store.db_path)
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        conn.executemany(
            "INSERT INTO photos (id, path, size, mtime_ns, width, height, content_hash, caption, "
            "indexed_at) VALUES (?, ?, ?, 0, ?, ?, ?, '', 0)",
            [
                (
                    i + 1,
                    f"/synthetic/{i // 1000:04d}/IMG_{i:07d}.jpg",
                    100_000,
                    *sizes[i],
                    hashes[i],
                )
                for i in range(photos)
            ],
        )
        conn.executemany(
            "INSERT INTO regions (id, photo_id, kind, x1, y1, x2, y2, vector) "
            "VALUES (?, ?, ?, 0, 0, 640, 480, ?)",
            [(i + 1, i + 1, KIND_IMAGE, vectors[i].tobytes()) for i in range(photos)],
        )
    conn.close()
    return [(int(a) + 1, int(b) + 1) for a, b in zip(originals, copies, strict=True)]


def measure_duplicates(photos: int, dim: int, args: argparse.Namespace) -> dict[str, Any]:
    from indexer.store import Store
    from retrieval.duplicates import find_duplicates

    folder = Path(args.stores) / f"dups-{photos}-d{dim}"
    t = time.perf_counter()
    planted = write_dup_store(folder, photos, dim, args)
    write_s = time.perf_counter() - t
    with Store(folder) as store:
        t = time.perf_counter()
        groups = find_duplicates(store)
        seconds = time.perf_counter() - t
    group_of = {p.photo_id: n for n, g in enumerate(groups) for p in g.photos}
    found = [a in group_of and group_of.get(a) == group_of.get(b) for a, b in planted]
    shutil.rmtree(folder)
    log(f"  duplicates at {photos:,} photos: {seconds:.1f} s, {len(groups)} groups")
    return {
        "photos": photos,
        "seconds": seconds,
        "write_s": write_s,
        "groups": len(groups),
        "exact_groups": sum(g.kind == "exact" for g in groups),
        "photos_in_groups": len(group_of),
        "planted_pairs": len(planted),
        "planted_found": float(np.mean(found)) if found else float("nan"),
    }


# -- report --------------------------------------------------------------------------------
def print_tables(
    rows: list[dict[str, Any]],
    sweeps: list[dict[str, Any]],
    args: Any,
    setup: str,
    filtered: list[dict[str, Any]] = (),  # type: ignore[assignment]
    dups: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    headers = [
        "regions",
        "kind",
        "build s",
        f"FAISS p50 ms (k={args.k})",
        "FAISS p95 ms",
        "recall@10",
        "search_vector p50 / p95 ms",
        "SQLite join p50 ms",
        "text e2e p50 / p95 ms",
        "text e2e cached p50 / p95 ms",
        "index B/region",
        "disk B/region",
    ]
    table = []
    for r in rows:
        table.append(
            [
                f"{r['size']:,}",
                r["kind"],
                fmt(r["build_s"], 1) + (" (cached)" if r.get("build_cached") else ""),
                fmt(r["faiss_p50_ms"]),
                fmt(r["faiss_p95_ms"]),
                fmt(r["recall_at_10"], 3),
                f"{fmt(r['search_vector_p50_ms'], 1)} / {fmt(r['search_vector_p95_ms'], 1)}",
                fmt(r["join_p50_ms"], 1),
                f"{fmt(r['text_uncached_p50_ms'], 1)} / {fmt(r['text_uncached_p95_ms'], 1)}",
                f"{fmt(r['text_cached_p50_ms'], 1)} / {fmt(r['text_cached_p95_ms'], 1)}",
                fmt(r["faiss_bytes_per_region"], 0),
                fmt(r["disk_bytes_per_region"], 0),
            ]
        )
    if rows:
        print(f"### Query latency by store size and FAISS kind ({setup})\n")
        print(markdown_table(headers, table))
    if sweeps:
        size = sweeps[0]["size"]
        print(f"\n### efSearch / nprobe sweep at {size:,} regions\n")
        headers = [
            "kind",
            "param",
            "FAISS p50 ms (k=10)",
            f"FAISS p50 / p95 ms (k={args.k})",
            "recall@10",
            "search_vector p50 / p95 ms",
        ]
        table = [
            [
                s["kind"],
                f"{s['param']}={s['value']}",
                fmt(s["faiss_k10_p50_ms"]),
                f"{fmt(s['faiss_p50_ms'])} / {fmt(s['faiss_p95_ms'])}",
                fmt(s["recall_at_10"], 3),
                f"{fmt(s['search_vector_p50_ms'], 1)} / {fmt(s['search_vector_p95_ms'], 1)}",
            ]
            for s in sweeps
        ]
        print(markdown_table(headers, table))
    print(
        f"\n{setup}. "
        "recall@10: overlap of the top 10 with exact (flat) search over "
        f"{args.queries} perturbed stored vectors, searched with k={candidate_k(args.top_k)} "
        "as Searcher does. FAISS latency: one query at a time, best of 2 rounds per query. "
        "search_vector = FAISS + SQLite join + grouping for a vector query; text e2e = "
        "Searcher.search(text=...) including CLIP text encoding (all prompt templates) of distinct "
        "strings; cached = the same strings again (text-vector cache hit)."
    )
    if filtered:
        print(
            f"\n### Filtered queries (a date filter keeping about {args.filter_fraction:.0%} of photos)\n"
        )
        headers = [
            "regions",
            "kind",
            "photos kept",
            "regions kept",
            "SQL p50 ms",
            "search_vector p50 / p95 ms",
            "same filter again p50 / p95 ms",
            "text e2e p50 / p95 ms",
            "of which text encoding p50 ms",
            "identical to exact",
            "full top-k",
            "top-k-then-drop keeps",
        ]
        table = [
            [
                f"{r['size']:,}",
                r["kind"],
                f"{r['photos_kept']:,} of {r['photos_total']:,}",
                f"{r['regions_kept']:,}",
                fmt(r["sql_p50_ms"], 1),
                f"{fmt(r['search_vector_p50_ms'], 1)} / {fmt(r['search_vector_p95_ms'], 1)}",
                f"{fmt(r['same_filter_p50_ms'], 1)} / {fmt(r['same_filter_p95_ms'], 1)}",
                f"{fmt(r['text_p50_ms'], 1)} / {fmt(r['text_p95_ms'], 1)}",
                fmt(r["encode_p50_ms"], 1),
                f"{r['identical_to_exact']:.0%}",
                f"{r['full_top_k']:.0%}",
                f"{r['naive_kept_mean']:.2f} of {args.top_k}",
            ]
            for r in filtered
        ]
        print(markdown_table(headers, table))
        print(
            "\nsearch_vector and text e2e: a new filter window for every query (its SQL runs); "
            "same filter again: one window repeated (its allowed set is cached). "
            "identical to exact: share of queries whose results (photos, regions, order) equal "
            "brute force over the filtered rows' stored vectors; top-k-then-drop keeps: how many "
            "of the unfiltered top k would pass the filter."
        )
    if dups:
        print("\n### Duplicates (synthetic photos-only stores, threshold 0.95)\n")
        headers = ["photos", "seconds", "µs / photo", "groups (exact)", "planted pairs found"]
        table = [
            [
                f"{d['photos']:,}",
                fmt(d["seconds"], 1),
                fmt(d["seconds"] / d["photos"] * 1e6, 0),
                f"{d['groups']:,} ({d['exact_groups']:,})",
                f"{d['planted_found']:.1%} of {d['planted_pairs']:,}",
            ]
            for d in dups
        ]
        print(markdown_table(headers, table))
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > cpus * 1.25:
        print(
            f"\nNote: load average {load:.1f} on {cpus} CPUs: other processes competed for the "
            "CPU, so latencies are noisy (p95 most of all)."
        )


def incremental(args: argparse.Namespace, embedder: Any) -> None:
    """The incremental-update row (``--incremental``): see benchmarks/_incremental.py."""
    from _incremental import measure, table

    from indexer.models.detector import Detector

    detector = Detector(args.detector, args.device)
    result = measure(
        Path(args.stores),
        args.incremental_size,
        args.incremental_photos,
        embedder,
        detector,
        args.incremental_kind,
    )
    print(table(result))
    write_json(
        Path(args.output).with_name("incremental.json"),
        {"config": vars(args), "machine": machine_info(), **result},
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import faiss

    from indexer.models.clip import ClipEmbedder

    args.clip_model = ensure_clip_model(args.clip_model)
    log(f"loading CLIP from {args.clip_model} ...")
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    embedder = ClipEmbedder(
        args.clip_model, args.device, precision=args.precision, backend=args.backend
    )
    default_faiss_threads = faiss.omp_get_max_threads()
    log(
        f"  precision {embedder.precision}, {embedder.dim}-d; FAISS threads "
        f"{args.faiss_threads or default_faiss_threads} while measuring"
    )

    if args.incremental:
        incremental(args, embedder)
        return
    sweep_size = args.sweep_size or max(args.size_list)
    sizes = sorted(set(args.size_list) | {sweep_size})
    rows: list[dict[str, Any]] = []
    sweeps: list[dict[str, Any]] = []
    filtered: list[dict[str, Any]] = []
    text_offset = 0
    cold: dict[str, Any] | None = None
    started = time.perf_counter()
    if args.filtered_only or args.cold_only:
        sizes = sorted(set(args.size_list))
    for size in sizes:
        cached = set()
        folder = store_dir(args, size, embedder.dim)
        info_path = folder / "bench.json"
        if info_path.is_file() and not args.rebuild:
            cached = set(json.loads(info_path.read_text(encoding="utf-8")).get("kinds", {}))
        faiss.omp_set_num_threads(default_faiss_threads)
        folder, info = ensure_store(size, embedder, args)
        rng = np.random.default_rng(args.seed + size)
        queries, exact = exact_neighbours(folder, rng, args)
        if args.faiss_threads > 0:
            faiss.omp_set_num_threads(args.faiss_threads)
        if size in args.size_list and not args.no_filtered:
            for kind in args.kind_list:
                log(f"filtered queries, {kind} at {size:,} regions ...")
                filtered.append(
                    measure_filtered(folder, kind, embedder, queries, args, text_offset)
                )
                text_offset += 2 * args.text_queries  # texts and encoding-only texts
        if size == args.cold_size:
            kind = "flat" if "flat" in args.kind_list else args.kind_list[0]
            activate(folder, kind)
            log(f"cold-CLI row: whole `objsearch search` processes on the {kind} store ...")
            cold = {**measure_cold(folder, args.cold_runs), "size": size, "kind": kind}
        if size in args.size_list and not args.filtered_only and not args.cold_only:
            for kind in args.kind_list:
                log(
                    f"measuring {kind} at {size:,} regions ({time.perf_counter() - started:.0f} s) ..."
                )
                row = measure(folder, kind, embedder, queries, exact, args, text_offset)
                text_offset += args.text_queries
                row.update(info["kinds"][kind])
                row["build_cached"] = kind in cached
                rows.append(row)
        if size == sweep_size and not args.filtered_only and not args.cold_only:
            if "hnsw" in args.kind_list:
                sweeps += sweep(folder, "hnsw", embedder, queries, exact, args.ef_list, args)
            if "ivf" in args.kind_list:
                sweeps += sweep(folder, "ivf", embedder, queries, exact, args.nprobe_list, args)
            for s in sweeps:
                s["size"] = size
    faiss.omp_set_num_threads(default_faiss_threads)
    dups = [measure_duplicates(n, embedder.dim, args) for n in args.dup_list]
    import torch

    setup = (
        f"CLIP text {embedder.precision} {embedder.backend} on {args.device}, torch threads "
        f"{torch.get_num_threads()}, FAISS threads {args.faiss_threads or default_faiss_threads}"
    )
    if rows or sweeps or filtered or dups:
        print_tables(rows, sweeps, args, setup, filtered, dups)
    if cold is not None:
        print_cold(cold, cold["size"])
    config = {k: v for k, v in vars(args).items()}
    write_json(
        args.output,
        {
            "config": config,
            "machine": machine_info(),
            "clip_precision": embedder.precision,
            "setup": setup,
            "seconds": time.perf_counter() - started,
            "results": rows,
            "sweeps": sweeps,
            "filtered": filtered,
            "duplicates": dups,
            "cold_cli": cold,
        },
    )
    log(f"wrote {args.output} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
