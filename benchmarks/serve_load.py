"""Load test of ``objsearch serve``: concurrent clients against a real server process.

Builds (once, cached under ``benchmarks/results/.stores``) a synthetic index of ``--regions``
regions with clustered random vectors, the way ``query_speed.py`` does, and makes its first
``--real-photos`` photos real JPEG files so image search and thumbnails have pixels to read.
The CLIP model is a random ViT-B/32 (``CLIPConfig()`` defaults), which costs what the real
one costs. Then it starts ``objsearch serve`` on a free loopback port and, for each
scenario and client count, runs a bounded number of requests from N threads, each with its
own HTTP connection. Prints p50/p95 latency and requests/s; exits non-zero on any error.

    python benchmarks/serve_load.py                       # 100k regions, 1 and 20 clients
    python benchmarks/serve_load.py --regions 10000 --requests 200
    python benchmarks/serve_load.py --index my-index      # an existing index instead
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import (
    RESULTS_DIR,
    ensure_clip_model,
    log,
    running_server,
    setup_environment,
)

setup_environment()

import httpx  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

API = "/api/v1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--regions", type=int, default=100_000, help="regions in the synthetic store")
    p.add_argument("--index", help="load-test this existing index instead of a synthetic one")
    p.add_argument("--clip-model", help="CLIP folder [default: cached random ViT-B/32]")
    p.add_argument("--clients", default="1,20", help="concurrent client counts to run")
    p.add_argument("--requests", type=int, default=400, help="requests per scenario and count")
    p.add_argument("--scenarios", default="text,image,thumb", help="text, image, thumb")
    p.add_argument("--real-photos", type=int, default=64, help="synthetic photos given pixels")
    p.add_argument("--k", type=int, default=10, help="results per search")
    p.add_argument("--clusters", type=int, default=0, help="vector mixture components (0 = auto)")
    p.add_argument("--spread", type=float, default=1.5, help="cluster spread of the vectors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stores", default=str(RESULTS_DIR / ".stores"), help="store cache folder")
    return p.parse_args(argv)


def _photo_jpeg(rng: np.random.Generator) -> bytes:
    image = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, 440)), int(rng.integers(0, 330))
        draw.rectangle(
            (x, y, x + 200, y + 150), fill=tuple(int(v) for v in rng.integers(0, 256, 3))
        )
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def give_pixels(folder: Path, count: int, seed: int) -> None:
    """Point the first ``count`` synthetic photos at real JPEG files with matching hashes."""
    from indexer.media.decode import hash_bytes

    rng = np.random.default_rng(seed)
    photos = folder / "photos"
    photos.mkdir(exist_ok=True)
    rows = []
    for pid in range(1, count + 1):
        data = _photo_jpeg(rng)
        path = photos / f"IMG_{pid:05d}.jpg"
        path.write_bytes(data)
        rows.append((str(path), len(data), hash_bytes(data), pid))
    with contextlib.closing(sqlite3.connect(folder / "objsearch.db")) as conn, conn:
        conn.executemany(
            "UPDATE photos SET path = ?, size = ?, content_hash = ?, width = 640, height = 480 "
            "WHERE id = ?",
            rows,
        )


def synthetic_index(args: argparse.Namespace, clip: str) -> Path:
    """The cached synthetic store for ``args.regions``, with its FAISS file saved."""
    import query_speed

    from indexer.models.clip import ClipEmbedder
    from indexer.store import Store

    embedder = ClipEmbedder(clip, "cpu")
    folder = Path(args.stores) / f"serve-{args.regions}-d{embedder.dim}"
    if (folder / "ready").is_file():
        return folder
    log(f"writing a synthetic index of {args.regions:,} regions to {folder} ...")
    query_speed.write_store(folder, args.regions, embedder, args)
    give_pixels(folder, args.real_photos, args.seed)
    with Store(folder) as store:
        t0 = time.perf_counter()
        store.save_vectors(store.rebuild_vectors(), store.generation)
        log(f"  built FAISS ({store.get_meta('faiss_kind')}) in {time.perf_counter() - t0:.1f} s")
    (folder / "ready").write_text("ok")
    return folder


def make_requests(scenario: str, url: str, count: int, offset: int, k: int) -> list:
    """``count`` request descriptions (method, path, kwargs), all distinct where it matters."""
    import query_speed

    with httpx.Client(base_url=url, timeout=120) as client:
        real = [  # photos whose files are readable (synthetic stores give pixels to the first)
            pid
            for pid in range(1, 201)
            if client.get(f"{API}/photos/{pid}/image", params={"max_side": 32}).is_success
        ]
        regions = []
        for pid in real:
            regions += [r["region_id"] for r in client.get(f"{API}/photos/{pid}").json()["regions"]]
    if scenario == "text":
        texts = query_speed.distinct_texts(count, offset)
        return [("GET", f"{API}/search", {"params": {"q": t, "k": k}}) for t in texts]
    if scenario == "image":
        if not real:
            raise SystemExit("no photo in the index has readable pixels for image queries")
        with httpx.Client(base_url=url, timeout=120) as client:
            blobs = [client.get(f"{API}/photos/{pid}/image").content for pid in real[:16]]
        return [
            ("POST", f"{API}/search", {"files": {"image": ("q.jpg", blob, "image/jpeg")},
                                       "data": {"k": str(k)}})
            for blob in itertools.islice(itertools.cycle(blobs), count)
        ]  # fmt: skip
    if scenario == "thumb":
        sizes = itertools.cycle((128, 192, 256))
        return [
            ("GET", f"{API}/regions/{rid}/thumb", {"params": {"size": next(sizes)}})
            for rid in itertools.islice(itertools.cycle(regions), count)
        ]
    raise SystemExit(f"unknown scenario {scenario!r}")


def run_load(url: str, requests: list, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = iter(requests)

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                method, path, kwargs = item
                t0 = time.perf_counter()
                try:
                    response = client.request(method, path, **kwargs)
                    ok = response.status_code == 200
                    problem = f"{response.status_code} {response.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, problem = False, repr(exc)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    if not ok:
                        errors.append(problem)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    seconds = time.perf_counter() - t0
    if errors:
        log(f"  {len(errors)} errors, first: {errors[0]}")
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "rps": len(latencies) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clip = ensure_clip_model(args.clip_model)
    index = Path(args.index) if args.index else synthetic_index(args, clip)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    counts = [int(c) for c in args.clients.split(",")]
    rows = []
    total_errors = 0
    with running_server(index, clip) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            regions = client.get(f"{API}/status").json()
        log(f"server up at {url}: {regions['photos']:,} photos, {regions['vectors']:,} vectors")
        for offset, (scenario, clients) in enumerate(itertools.product(scenarios, counts)):
            requests = make_requests(scenario, url, args.requests, offset * args.requests, args.k)
            run_load(url, requests[: max(clients, 8)], clients)  # warm-up (thumbs get cached)
            log(f"{scenario}: {clients} clients, {len(requests)} requests ...")
            result = run_load(url, requests, clients)
            total_errors += result["errors"]
            rows.append((scenario, clients, result))
    print(f"\n{regions['vectors']:,} regions ({regions['faiss_kind']}), k={args.k}\n")
    print("| scenario | clients | requests | errors | p50 ms | p95 ms | req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = {"text": "text search", "image": "image search (upload)", "thumb": "thumbnail"}
    for scenario, clients, r in rows:
        print(
            f"| {names.get(scenario, scenario)} | {clients} | {r['requests']} | {r['errors']} | "
            f"{r['p50']:.1f} | {r['p95']:.1f} | {r['rps']:.1f} |"
        )
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
