"""The incremental-update row of query_speed.py (``--incremental``): small runs on a big store.

A store of ``--incremental-size`` regions (5 per photo) is written once and cached under
``benchmarks/results/.stores``: real photo files on disk (tiny JPEGs whose bytes differ, so
every content hash differs), their rows and synthetic unit vectors in SQLite, and an HNSW
FAISS file built from them (``Store.rebuild_vectors``: minutes at 1M regions, paid once).
Each measurement then changes, adds and deletes photos (``--incremental-photos`` in all) and
times a real ``Indexer.index`` run over the whole folder with preloaded models, so model time
is reported apart (``Indexer.timings``) and subtracted. A second run restores the folder,
so the cached store stays the same size from one benchmark to the next.

The check: after the run, the searcher's answers equal a merge computed independently
(approximate search over the live main segment plus exact search over the delta), contain no
deleted region, and have the same recall@10 against exact search over SQLite's vectors as
the untouched store.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

REGIONS_PER_PHOTO = 5
PHOTOS_PER_FOLDER = 1000
STORE_FORMAT = 1  # bump when the synthetic data changes, to invalidate cached stores
SIDE = (32, 24)  # photo size: the models see real (tiny) photos


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


# -- the cached store ----------------------------------------------------------------------
def base_jpeg() -> bytes:
    """One tiny JPEG; every photo is this with its own comment segment (distinct bytes)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 255, size=(SIDE[1], SIDE[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


def photo_bytes(base: bytes, tag: str) -> bytes:
    """``base`` with a JPEG comment (COM) segment naming ``tag`` right after the SOI marker."""
    text = tag.encode("ascii")
    return base[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]


def photo_path(root: Path, photo_id: int) -> Path:
    return root / f"{(photo_id - 1) // PHOTOS_PER_FOLDER:04d}" / f"IMG_{photo_id:07d}.jpg"


def unit_vectors(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    """``count`` unit vectors around random ``centres`` (clustered, like photo embeddings)."""
    dim = centres.shape[1]
    out = centres[rng.integers(0, len(centres), size=count)]
    out = out + rng.standard_normal((count, dim), dtype=np.float32) * (1.2 / np.sqrt(dim))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def write_store(folder: Path, size: int, dim: int, seed: int) -> dict[str, Any]:
    """Photo files plus their SQLite rows (5 regions each, synthetic vectors)."""
    from _common import REGION_INSERT, finish_synthetic_store

    from indexer.media.decode import hash_bytes
    from indexer.store import KIND_IMAGE, KIND_OBJECT, Store

    if folder.exists():
        shutil.rmtree(folder)
    photos_dir, index_dir = folder / "photos", folder / "index"
    t0 = time.perf_counter()
    Store(index_dir, create=True).close()
    conn = sqlite3.connect(index_dir / "objsearch.db")
    conn.execute("PRAGMA synchronous=OFF")
    for trigger in ("photo_text_insert", "photo_text_label"):  # full-text rows: built once below
        conn.execute(f"DROP TRIGGER {trigger}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(32, size // 250), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    base = base_jpeg()
    photos = size // REGIONS_PER_PHOTO
    now = time.time()
    w, h = float(SIDE[0]), float(SIDE[1])
    for start in range(1, photos + 1, PHOTOS_PER_FOLDER):
        ids = range(start, min(photos, start + PHOTOS_PER_FOLDER - 1) + 1)
        vecs = unit_vectors(rng, centres, len(ids) * REGIONS_PER_PHOTO)
        photo_rows, region_rows = [], []
        photo_path(photos_dir, start).parent.mkdir(parents=True, exist_ok=True)
        for j, photo_id in enumerate(ids):
            path = photo_path(photos_dir, photo_id)
            data = photo_bytes(base, f"photo {photo_id}")
            path.write_bytes(data)
            st = path.stat()
            photo_rows.append(
                (photo_id, str(path), st.st_size, st.st_mtime_ns, SIDE[0], SIDE[1])
                + (hash_bytes(data), "", now, "2020-01-01T00:00:00", "exif-original")
            )
            for slot in range(REGIONS_PER_PHOTO):
                region_id = (photo_id - 1) * REGIONS_PER_PHOTO + slot + 1
                vec = vecs[j * REGIONS_PER_PHOTO + slot].tobytes()
                if slot == 0:
                    row = (region_id, photo_id, KIND_IMAGE, 0.0, 0.0, w, h, None, None, vec)
                else:
                    box = (slot, slot, w - slot, h - slot)
                    row = (region_id, photo_id, KIND_OBJECT, *box, "cup", 0.5, vec)
                region_rows.append(row)
        with conn:
            conn.executemany(
                "INSERT INTO photos (id, path, size, mtime_ns, width, height, content_hash, "
                "caption, indexed_at, taken_at, date_source) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                photo_rows,
            )
            conn.executemany(REGION_INSERT, region_rows)
        if start % 20_000 == 1:
            _log(
                f"  {start + len(ids) - 1:,} / {photos:,} photos ({time.perf_counter() - t0:.0f} s)"
            )
    finish_synthetic_store(conn)
    store = Store(index_dir)
    store.set_meta(generation=1, embed_dim=dim, detector="synthetic")
    store.close()
    return {"write_s": time.perf_counter() - t0, "photos": photos}


def cached_main(folder: Path, kind: str) -> Path:
    return folder / "index" / f"vectors-{kind}.faiss"


def build_main(folder: Path, kind: str) -> dict[str, float]:
    """Build the main segment once from SQLite; kept as ``index/vectors-<kind>.faiss``."""
    from indexer.store import Store

    store = Store(folder / "index")
    try:
        t = time.perf_counter()
        index = store.rebuild_vectors(kind)
        build_s = time.perf_counter() - t
        index.save(str(cached_main(folder, kind)))
    finally:
        store.close()
    return {f"{kind}_build_s": build_s}


def ensure_store(root: Path, size: int, dim: int, seed: int = 0, kind: str = "hnsw") -> Path:
    """The cached store folder for ``size`` regions (built when missing or outdated)."""
    folder = root / f"incremental-{size}-d{dim}"
    info_path = folder / "bench.json"
    wanted = {"format": STORE_FORMAT, "size": size, "dim": dim, "seed": seed}
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if any(info.get(k) != v for k, v in wanted.items()):
        _log(f"writing a {size:,}-region store with photo files into {folder} ...")
        info = {**wanted, **write_store(folder, size, dim, seed)}
        info_path.write_text(json.dumps(info, indent=2))
    if not cached_main(folder, kind).is_file():
        _log(f"  building {kind} over {size:,} vectors (once; HNSW takes long at 1M) ...")
        info.update(build_main(folder, kind))
        info_path.write_text(json.dumps(info, indent=2))
        _log(f"  {kind} built in {info[f'{kind}_build_s']:.0f} s")
    return folder


# -- the measurement ------------------------------------------------------------------------
def activate(folder: Path, kind: str) -> None:
    """Make the cached main file the store's main segment (a hard link) and record it once.

    Later benchmark runs keep it: their changes are its delta and tombstones, as in use.
    """
    from indexer.store import Store, VectorIndex

    index_dir = folder / "index"
    main, cached = index_dir / "vectors.faiss", cached_main(folder, kind)
    with Store(index_dir) as store:
        store.set_meta(faiss_kind_requested=kind)
        if main.exists() and os.path.samefile(main, cached) and store.vector_status().main:
            return
        if main.exists():
            main.unlink()
        os.link(cached, main)
        index = VectorIndex.load(str(main), mapped=True)
        store._record_vectors(index, store.generation, main.stat().st_size)


def record_model(folder: Path, embedder: Any, detector: Any) -> None:
    """Record the benchmark's models in the store, as the first index run would have."""
    from indexer.models.identity import ModelIdentity, model_mismatch, model_record
    from indexer.store import Store

    with Store(folder / "index") as store:
        identity = ModelIdentity.of(embedder)
        if "clip_model" not in store.meta() or model_mismatch(store.meta(), identity):
            store.set_meta(**model_record(identity))
        store.set_meta(detector=detector.model_id if detector else "none")


def make_changes(folder: Path, count: int, rng: np.random.Generator, tag: str) -> dict[str, Any]:
    """Change, add and delete photos (about a third each); returns how to undo it."""
    photos_dir, aside = folder / "photos", folder / "aside"
    aside.mkdir(exist_ok=True)
    n_photos = json.loads((folder / "bench.json").read_text())["photos"]
    ids = rng.choice(np.arange(1, n_photos + 1), size=count, replace=False).tolist()
    n_change, n_add = count // 3, count // 3
    changed, deleted = ids[:n_change], ids[n_change + n_add :]
    base = base_jpeg()
    originals = {}
    for photo_id in changed:
        path = photo_path(photos_dir, photo_id)
        originals[str(path)] = path.read_bytes()
        path.write_bytes(photo_bytes(base, f"photo {photo_id} changed {tag}"))
    added = []
    for i in range(n_add):
        path = photos_dir / "added" / f"NEW_{tag}_{i:04d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(photo_bytes(base, f"new {tag} {i}"))
        added.append(str(path))
    moved = []
    for photo_id in deleted:
        path = photo_path(photos_dir, photo_id)
        target = aside / path.name
        os.replace(path, target)
        moved.append((str(path), str(target)))
    return {"originals": originals, "added": added, "moved": moved}


def undo_changes(undo: dict[str, Any]) -> None:
    """Put the folder back: original bytes, added photos gone, deleted ones back."""
    for path, data in undo["originals"].items():
        Path(path).write_bytes(data)
    for path in undo["added"]:
        os.unlink(path)
    for path, target in undo["moved"]:
        os.replace(target, path)


def timed_run(folder: Path, embedder: Any, detector: Any, kind: str) -> dict[str, Any]:
    """One real ``Indexer.index`` run over the whole folder, with its breakdown."""
    from indexer.indexing import Indexer

    indexer = Indexer(folder / "index", embedder=embedder, detector=detector, index_type=kind)
    t = time.perf_counter()
    stats = indexer.index([folder / "photos"])
    seconds = time.perf_counter() - t
    timings = dict(indexer.timings)
    model = sum(timings.get(k, 0.0) for k in ("detect", "crop", "embed"))
    return {
        "seconds": seconds,
        "model_s": model,
        "without_model_s": seconds - model,
        "timings": timings,
        "stats": stats.to_dict(),
        "load_average": os.getloadavg()[0],
    }


def check_search(folder: Path, deleted: np.ndarray, queries: int = 50) -> dict[str, Any]:
    """Searcher's view after the run against an independent merge and exact search."""
    from indexer.store import LiveVectors, Store
    from indexer.store.live import merge_hits

    with Store(folder / "index") as store:
        t = time.perf_counter()
        live, from_file = store.load_vectors()
        load_s = time.perf_counter() - t
        # Queries near stored photos (perturbed live vectors), as real queries are: far
        # from every cluster, all neighbours score alike and no graph index finds them.
        rng = np.random.default_rng(11)
        picked = rng.choice(live.ids(), size=queries, replace=False)
        q = np.stack([store.region_vector(int(i)) for i in picked])
        q += rng.standard_normal(q.shape).astype(np.float32) * 0.02
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        scores, ids = live.search(q, 10)
        main = live.main.search(q, 10, excluded=live._excluded)
        want = merge_hits([main, live.delta.search(q, 10)], 10)
        identical = bool(np.array_equal(ids, want[1]) and np.array_equal(scores, want[0]))
        exact = LiveVectors(store.rebuild_vectors("flat"))  # a fresh exact rebuild
        exact_scores, exact_ids = exact.search(q, 10)
        same_as_rebuild = bool(
            np.array_equal(ids, exact_ids) and np.array_equal(scores, exact_scores)
        )
    recall = float(
        np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids, strict=True)])
    )
    return {
        "load_vectors_s": load_s,
        "from_file": from_file,
        "kind": live.index_type,
        "pending": live.pending,
        "tombstones": len(live.tombstones),
        "delta": live.delta.ntotal,
        "merge_identical": identical,
        "equals_fresh_rebuild": same_as_rebuild,
        "deleted_returned": int(np.isin(ids, deleted).sum()),
        "recall_at_10": recall,
    }


def deleted_region_ids(folder: Path, paths: list[str]) -> np.ndarray:
    from indexer.store import Store

    with Store(folder / "index") as store:
        states = store.photo_states(paths)
        out = []
        for state in states.values():
            found = store.photo_with_regions(state.id)
            out += [r.id for r in found[1]] if found else []
    return np.array(out, np.int64)


def measure(
    root: Path, size: int, count: int, embedder: Any, detector: Any, kind: str = "hnsw"
) -> dict[str, Any]:
    """The incremental row: a change run and the run that undoes it, plus the check."""
    folder = ensure_store(root, size, embedder.dim, kind=kind)
    activate(folder, kind)
    record_model(folder, embedder, detector)
    info_path = folder / "bench.json"
    info = json.loads(info_path.read_text())
    runs = int(info.get("runs", 0))
    rng = np.random.default_rng(1000 + runs)
    undo = make_changes(folder, count, rng, f"r{runs}")
    gone = [path for path, _ in undo["moved"]] + list(undo["originals"])
    deleted = deleted_region_ids(folder, gone)  # replaced photos' old regions go too
    _log(f"  run 1: {count} photos changed, added or deleted in a {size:,}-region store ...")
    first = timed_run(folder, embedder, detector, kind)
    _log("  checking search against a merge and an exact rebuild ...")
    check = check_search(folder, deleted)
    undo_changes(undo)
    _log("  run 2: undoing them ...")
    second = timed_run(folder, embedder, detector, kind)
    info["runs"] = runs + 1
    info_path.write_text(json.dumps(info, indent=2))
    return {"size": size, "photos": count, "runs": [first, second], "check": check}


def table(result: dict[str, Any]) -> str:
    """Markdown: the target next to each run, with the breakdown and the check."""
    rows = []
    for name, run in zip(("change run", "undo run"), result["runs"], strict=True):
        t = run["timings"]
        rows.append(
            f"| {name} | {run['stats']['indexed']} indexed, {run['stats']['removed']} removed "
            f"| {run['seconds']:.1f} | {run['model_s']:.1f} | **{run['without_model_s']:.1f}** "
            f"| ≤ 15 | {t.get('scan', 0):.1f} | {t.get('decode', 0) + t.get('hash', 0):.1f} "
            f"| {t.get('store', 0):.2f} | {t.get('faiss', 0):.2f} | {run['load_average']:.1f} |"
        )
    c = result["check"]
    head = (
        f"Incremental update, {result['size']:,} regions ({c['kind']} main segment), "
        f"{result['photos']} photos changed/added/deleted per run\n\n"
        "| run | work | total s | model s | **without model s** | target s | scan+plan s "
        "| decode+hash s | commit s | FAISS save s | load avg |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    check = (
        f"\nSearch after the change run: vectors loaded in {c['load_vectors_s']:.2f} s "
        f"(main segment mapped from the file: {c['from_file']}; {c['tombstones']} tombstones, "
        f"{c['delta']} delta vectors); result = {c['kind']} search over the live main "
        "segment merged with "
        f"exact search over the delta: {'identical' if c['merge_identical'] else 'DIFFERENT'}; "
        f"deleted regions returned: {c['deleted_returned']}; recall@10 against a fresh exact "
        f"rebuild from SQLite: {c['recall_at_10']:.3f} (ids and scores identical to it: "
        f"{'yes' if c['equals_fresh_rebuild'] else 'no'})."
    )
    return head + "\n".join(rows) + "\n" + check


if __name__ == "__main__":  # build the cached store ahead of a benchmark run
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    p = argparse.ArgumentParser(description="build the cached store of the incremental row")
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--stores", default=str(Path(__file__).resolve().parent / "results" / ".stores"))
    a = p.parse_args()
    ensure_store(Path(a.stores), a.size, a.dim)
