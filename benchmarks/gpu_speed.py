"""CUDA indexing throughput: marginal photos/s and the fixed cost, on one GPU.

Copies of the shared COCO photos fill two folders (``--sizes``, default 512 and 2048). Each
mode indexes both into a fresh index with models loaded once (fp16 CLIP, the device region
path), and the marginal rate is ``(n2 - n1) / (t2 - t1)``, which cancels start-up. Then the
whole ``objsearch index`` command runs on both folders in fresh processes: its marginal rate
and its fixed cost (the intercept), with a breakdown of that fixed cost from a probe process
(imports, model loading, the first 64 photos).

    python benchmarks/gpu_speed.py                   # needs a CUDA GPU
    python benchmarks/gpu_speed.py --sizes 256,1024 --clip-model openai/clip-vit-base-patch32
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from indexer.settings import configure_ultralytics  # noqa: E402

configure_ultralytics()

from _common import (  # noqa: E402
    DEFAULT_DETECTOR,
    DEFAULT_PHOTOS,
    RESULTS_DIR,
    ensure_clip_model,
    log,
    machine_info,
    markdown_table,
    setup_environment,
    write_json,
)

setup_environment()

# name, batch size (photos), embed batch size (CLIP images), detect objects
MODES = (
    ("objects, default batches", None, None, True),
    ("objects, 128 photos / 1024 crops", 128, 1024, True),
    ("photos only, default batches", None, None, False),
)

PROBE = r"""
import sys, time
t0 = time.perf_counter()
from retrieval.cli import main
from indexer import Indexer
t1 = time.perf_counter()
ix = Indexer(sys.argv[1], clip_model=sys.argv[2], detector_weights=sys.argv[3], device="cuda")
ix.load_models()
t2 = time.perf_counter()
ix.index([sys.argv[4]])
t3 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f}")
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="photos to copy")
    p.add_argument("--detector", default=str(DEFAULT_DETECTOR))
    p.add_argument("--clip-model", default=None, help="default: a random ViT-B/32")
    p.add_argument("--sizes", default="512,2048", help="two folder sizes")
    p.add_argument("--output", default=str(RESULTS_DIR / "gpu_speed.json"))
    return p.parse_args()


def fill(folder: Path, photos: list[Path], n: int) -> str:
    """``n`` copies of ``photos`` (cycled) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = photos[i % len(photos)]
        shutil.copy(src, folder / f"{i:05d}{src.suffix}")
    return str(folder)


def marginal(points: dict[int, float]) -> tuple[float, float]:
    """(photos/s, intercept seconds) through two (photos, seconds) points."""
    (n1, t1), (n2, t2) = sorted(points.items())
    rate = (n2 - n1) / (t2 - t1)
    return rate, t1 - n1 / rate


def main() -> None:
    args = parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_speed.py needs a CUDA GPU (torch sees none).")
    from indexer import Indexer

    clip = ensure_clip_model(args.clip_model)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="objsearch-gpu-"))
    folders = {n: fill(work / f"photos-{n}", photos, n) for n in sizes}
    warm = Indexer(work / "warm", clip_model=clip, detector_weights=args.detector, device="cuda")
    warm.load_models()
    warm_photos = fill(work / "photos-warm", photos, 64)
    warm.index([warm_photos])
    rows: list[list[Any]] = []
    report: dict[str, Any] = {"machine": machine_info(), "gpu": torch.cuda.get_device_name(0)}
    for name, batch, embed, detect in MODES:
        points: dict[int, float] = {}
        for n in sizes:
            ix = Indexer(
                work / f"index-{len(rows)}-{n}",
                clip_model=clip,
                detector_weights=args.detector,
                device="cuda",
                batch_size=batch,
                embed_batch_size=embed,
                detect_objects=detect,
                embedder=warm.embedder,
                detector=warm.detector,
            )
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            stats = ix.index([folders[n]])
            points[n] = time.perf_counter() - t
            log(f"{name}: {n} photos in {points[n]:.2f} s, stages {dict(ix.timings)}")
        rate, intercept = marginal(points)
        peak = torch.cuda.max_memory_allocated() / 2**30
        rows.append(
            [
                name,
                f"{rate:.0f}",
                f"{intercept:.1f}",
                f"{stats.objects / stats.indexed:.1f}",
                f"{peak:.1f}",
            ]
        )
        report[name] = {"marginal": rate, "intercept_s": intercept, "seconds": points}
    cli: dict[int, float] = {}
    for n in sizes:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "retrieval.cli", "index", folders[n], "--index",
             str(work / f"cli-{n}"), "--clip-model", clip, "--detector", args.detector,
             "--device", "cuda", "--json"],
            check=True, capture_output=True,
        )  # fmt: skip
        cli[n] = time.perf_counter() - t
    rate, fixed = marginal(cli)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(work / "probe"), clip, args.detector, warm_photos],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    imports, load, first = (float(v) for v in probe.stdout.split())
    rows.append(["`objsearch index` command, defaults", f"{rate:.0f}", f"{fixed:.1f}", "", ""])
    report["cli"] = {"marginal": rate, "fixed_s": fixed, "seconds": cli}
    report["fixed_cost"] = {"imports_s": imports, "model_load_s": load, "first_run_s": first}
    print(f"### CUDA indexing ({report['gpu']}, fp16 CLIP)\n")
    print(
        markdown_table(
            ["mode", "photos/s (marginal)", "start-up s", "objects/photo", "GPU peak GiB"], rows
        )
    )
    print(
        f"\nFixed cost of the command: imports {imports:.1f} s, loading the models {load:.1f} s, "
        f"then the first 64 photos in {first:.1f} s."
    )
    write_json(args.output, report)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
