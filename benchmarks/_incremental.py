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
    from indexer.media.decode import hash_bytes
    from indexer.store import KIND_IMAGE, KIND_OBJECT, Store
    from indexer.store.migrations import fill_photo_text
    from indexer.store.schema import SEARCH_DDL

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
            conn.executemany(
                "INSERT INTO regions (id, photo_id, kind, x1, y1, x2, y2, label, confidence, "
                "vector) VALUES (?,?,?,?,?,?,?,?,?,?)",
                region_rows,
            )
        if start % 20_000 == 1:
            _log(
                f"  {start + len(ids) - 1:,} / {photos:,} photos ({time.perf_counter() - t0:.0f} s)"
            )
    with conn:
        for statement in SEARCH_DDL:
            conn.execute(statement)
        fill_photo_text(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    store = Store(index_dir)
    store.set_meta(generation=1, embed_dim=dim, detector="synthetic")
    store.close()
    return {"write_s": time.perf_counter() - t0, "photos": photos}


def build_main(folder: Path) -> dict[str, float]:
    """Build the HNSW file once from SQLite; kept as ``index/vectors-hnsw.faiss``."""
    from indexer.store import Store

    store = Store(folder / "index")
    try:
        t = time.perf_counter()
        index = store.rebuild_vectors("hnsw")
        build_s = time.perf_counter() - t
        index.save(str(folder / "index" / "vectors-hnsw.faiss"))
    finally:
        store.close()
    return {"hnsw_build_s": build_s}


def ensure_store(root: Path, size: int, dim: int, seed: int = 0) -> Path:
    """The cached store folder for ``size`` regions (built when missing or outdated)."""
    folder = root / f"incremental-{size}-d{dim}"
    info_path = folder / "bench.json"
    wanted = {"format": STORE_FORMAT, "size": size, "dim": dim, "seed": seed}
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if any(info.get(k) != v for k, v in wanted.items()):
        _log(f"writing a {size:,}-region store with photo files into {folder} ...")
        info = {**wanted, **write_store(folder, size, dim, seed)}
        info_path.write_text(json.dumps(info, indent=2))
    if not (folder / "index" / "vectors-hnsw.faiss").is_file():
        _log(f"  building HNSW over {size:,} vectors (once; minutes at 1M) ...")
        info.update(build_main(folder))
        info_path.write_text(json.dumps(info, indent=2))
        _log(f"  HNSW built in {info['hnsw_build_s']:.0f} s")
    return folder


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
