"""Embedding towers side by side: images/s and texts/s of several models, interleaved.

Whole indexing runs on a shared machine swing by a factor of two or more from one run to
the next (other work takes the cores), which hides how much faster one embedding model
is than another. This script loads every model in one process from its OpenVINO
conversion (as an index run does after the first), embeds the same real photos with each
in turn, round after round, and keeps each model's fastest round: a burst of load slows a
round of every model, not every round of one. The ratios to the first model are the
figures to read.

    python benchmarks/tower_speed.py --families clip,open_clip:MobileCLIP2-S0,open_clip:ViT-B-32-256

Each ``--families`` entry is a random model of the real shape (see ``index_speed.py``);
``--write-speeds`` adds the figures to the side-by-side entries ``objsearch models`` shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_PHOTOS,
    RESULTS_DIR,
    ensure_family_model,
    fmt,
    log,
    machine_info,
    markdown_table,
    setup_environment,
    write_json,
)

setup_environment()

from index_speed import family_and_shape, list_photos  # noqa: E402

from indexer.models.catalog import MEASURED_CHECKPOINTS, SPEEDS_FILE, load_speeds  # noqa: E402

TEXTS = ["a dog", "a photo of a red bicycle", "a cropped photo of a cup.", "shop front"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="clip,open_clip:MobileCLIP2-S0,open_clip:ViT-B-32-256")
    p.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="real photos to embed")
    p.add_argument("--batch", type=int, default=16, help="photos per timed batch")
    p.add_argument("--rounds", type=int, default=7, help="rounds over all models; best kept")
    p.add_argument("--precision", default="auto", help="embedding precision (auto: the default)")
    p.add_argument("--write-speeds", action="store_true", help=f"add the figures to {SPEEDS_FILE}")
    p.add_argument("--output", default=str(RESULTS_DIR / "tower_speed.json"), help="JSON results")
    return p.parse_args(argv)


def load(name: str, precision: str) -> Any:
    from indexer.models.converted import load_embedder

    path = ensure_family_model(name)
    load_embedder(path, "cpu", precision=precision, backend="openvino")  # converts once
    return load_embedder(path, "cpu", precision=precision, backend="openvino")


def measure(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from PIL import Image

    names = [n.strip() for n in args.families.split(",") if n.strip()]
    photos = [Image.open(p).convert("RGB") for p in list_photos(args.photos, args.batch)]
    models = {name: load(name, args.precision) for name in names}
    inputs = {name: m.preprocess(photos) for name, m in models.items()}
    best: dict[str, dict[str, float]] = {n: {"image": 1e9, "text": 1e9} for n in names}
    for name, model in models.items():  # warm-up: first inferences allocate
        model.embed_inputs(inputs[name])
        model.embed_texts(TEXTS)
    for round_ in range(args.rounds):
        for name, model in models.items():
            t = time.perf_counter()
            model.embed_inputs(inputs[name])
            best[name]["image"] = min(best[name]["image"], time.perf_counter() - t)
            t = time.perf_counter()
            model.embed_texts(TEXTS)
            best[name]["text"] = min(best[name]["text"], time.perf_counter() - t)
        log(f"round {round_ + 1}/{args.rounds} done")
    results = {}
    for name, model in models.items():
        family, shape = family_and_shape(name)
        results[name] = {
            "family": family.name,
            "shape": shape,
            "input": "x".join(str(s) for s in model.pixels.image_size),
            "precision": model.precision,
            "images_per_s": round(len(photos) / best[name]["image"], 2),
            "texts_per_s": round(len(TEXTS) / best[name]["text"], 2),
        }
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python benchmarks/tower_speed.py " + " ".join(argv or sys.argv[1:])
    results = measure(args)
    first = next(iter(results.values()))
    rows = [
        [
            f"{r['family']}: {r['shape']}",
            MEASURED_CHECKPOINTS.get(r["shape"], "-"),
            r["input"],
            fmt(r["images_per_s"], 1),
            fmt(r["images_per_s"] / first["images_per_s"]) + "×",
            fmt(r["texts_per_s"], 1),
            fmt(r["texts_per_s"] / first["texts_per_s"]) + "×",
        ]
        for r in results.values()
    ]
    headers = ["model (random weights)", "checkpoint", "input px", "images/s", "ratio"]
    headers += ["texts/s", "ratio"]
    print(f"### Embedding towers, {args.batch} real photos a batch, best of {args.rounds} rounds\n")
    print(markdown_table(headers, rows))
    machine = machine_info()
    print(f"\nPrecision {first['precision']}; load average {machine.get('load_avg')}.")
    write_json(args.output, {"machine": machine, "command": command, "models": results})
    if args.write_speeds:
        data = load_speeds()
        data["towers"] = {"command": command, "date": time.strftime("%Y-%m-%d"), **results}
        SPEEDS_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {SPEEDS_FILE}")


if __name__ == "__main__":
    main()
