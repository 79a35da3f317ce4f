"""What one Ray actor and one decode core deliver: the inputs of docs/scaling.md's estimate.

A Ray run's actor does exactly :class:`indexer.indexing.regions.RegionEmbedder` work on
decoded photos, and each decode task does :func:`indexer.media.decode.read_photo`; the
driver only commits. This script times the two apart on this machine and device (run it on
a GPU node to size a GPU cluster), models loaded and warmed up before the clock:

    python benchmarks/actor_rate.py --device cuda --limit 128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from indexer.settings import configure_ultralytics  # noqa: E402

configure_ultralytics()

from _common import (  # noqa: E402
    DEFAULT_DETECTOR,
    DEFAULT_PHOTOS,
    RESULTS_DIR,
    ensure_clip_model,
    fmt,
    load_models,
    log,
    machine_info,
    markdown_table,
    setup_environment,
    write_json,
)

setup_environment()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder of photos")
    p.add_argument("--limit", type=int, default=64, help="photos to time")
    p.add_argument("--detector", default=str(DEFAULT_DETECTOR), help="YOLO weights (.pt)")
    p.add_argument("--clip-model", default=None, help="CLIP folder; default: a random ViT-B/32")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto")
    p.add_argument("--backend", default="auto")
    p.add_argument("--batch-size", type=int, default=16, help="photos per actor batch")
    p.add_argument("--embed-batch-size", type=int, default=64)
    p.add_argument("--output", default=str(RESULTS_DIR / "actor_rate.json"))
    args = p.parse_args()
    args.clip_model = ensure_clip_model(args.clip_model)

    from indexer import DetectOptions
    from indexer.indexing.regions import RegionEmbedder
    from indexer.media.decode import read_photo

    photos = sorted(str(f) for f in Path(args.photos).iterdir() if f.is_file())[: args.limit]
    t = time.perf_counter()
    decoded = [read_photo(f) for f in photos]
    decode_s = time.perf_counter() - t

    embedder, detector = load_models(args)
    regions = RegionEmbedder(embedder, detector, DetectOptions())
    regions.embed(decoded[: args.batch_size])  # warm-up (kernels, allocator, OpenVINO)
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    t = time.perf_counter()
    objects = 0
    for i in range(0, len(decoded), args.batch_size):
        objects += sum(len(r.regions) - 1 for r in regions.embed(decoded[i : i + args.batch_size]))
    actor_s = time.perf_counter() - t
    n = len(decoded)
    result = {
        "photos": n,
        "objects": objects,
        "device": args.device,
        "precision": embedder.precision,
        "backend": f"{embedder.backend}/{detector.backend}",
        "actor_photos_per_s": n / actor_s,
        "actor_regions_per_s": (n + objects) / actor_s,
        "decode_photos_per_s_per_core": n / decode_s,
        "machine": machine_info(),
    }
    print(
        markdown_table(
            [
                "device",
                "photos",
                "objects/photo",
                "actor photos/s",
                "actor regions/s",
                "decode photos/s per core",
                "precision",
                "backend",
            ],
            [
                [
                    args.device,
                    n,
                    fmt(objects / n, 1),
                    fmt(result["actor_photos_per_s"]),
                    fmt(result["actor_regions_per_s"]),
                    fmt(result["decode_photos_per_s_per_core"]),
                    embedder.precision,
                    result["backend"],
                ]
            ],
        )
    )
    write_json(args.output, result)
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
