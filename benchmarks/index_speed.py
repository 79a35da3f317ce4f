"""Indexing throughput: whole ``objsearch index`` commands against the naive per-photo loop.

Modes:

* ``reference``   the naive detect-then-embed loop, in its own process with the models
                  preloaded: per photo, ``YOLO.predict`` on the file, then ``CLIPProcessor`` +
                  ``get_image_features`` on the whole photo and on each crop, one image at a
                  time, appending vectors to an in-memory SQLite. The yardstick.
* ``objsearch``   ``objsearch index`` (a real CLI process) into a fresh index.
* ``photos-only`` the same with ``--photos-only`` (one CLIP pass per photo).
* ``int8``        the same as objsearch with ``--precision int8``.
* ``update``      the small update: ``--update-add`` photos added to an indexed folder of
                  ``--update-base`` and ``objsearch index`` run again (objects mode), with the
                  peak memory of the base run (see ``_cli_runs.measure_update``).

The CLI modes index ``--small`` and ``--large`` photos (a fresh index each, after an untimed
warm-up run that fills the conversion caches) and report the marginal rate, the fixed cost
(the intercept) and the time from command start to the first photo entering the models,
plus marginal milliseconds per photo for each stage (see ``_cli_runs.py``) and a table of
the targets. With the int8 mode (or ``--check-precision``) fp32, bf16 and int8 vectors of
real photos and crops are compared. ``--families clip,siglip,siglip2,altclip`` times the
indexer in-process once per model family, each with a random model of the shape
``objsearch models`` reports; ``--write-speeds`` stores that table where ``objsearch models``
reads it. ``--ray ADDRESS`` (e.g. ``local``) adds Ray against the local pipeline (``_ray.py``).

    python benchmarks/index_speed.py --small 32 --large 96 --reference-limit 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from indexer.models.catalog import SPEEDS_FILE, load_speeds  # noqa: E402
from indexer.models.families import FAMILIES, Family, family_named  # noqa: E402
from indexer.settings import configure_ultralytics  # noqa: E402

configure_ultralytics()  # offline and quiet, before anything imports ultralytics

from _cli_runs import STAGES, measure_mode, measure_update  # noqa: E402
from _common import (  # noqa: E402
    DEFAULT_DETECTOR,
    DEFAULT_PHOTOS,
    OPEN_CLIP_PREFIX,
    RESULTS_DIR,
    ensure_clip_model,
    ensure_family_model,
    fmt,
    load_models,
    log,
    machine_info,
    markdown_table,
    missing_asset_message,
    setup_environment,
    write_json,
)

setup_environment()

from tests.openclip_factory import REAL_SHAPE_TAGS  # noqa: E402

MODES = ("reference", "objsearch", "photos-only", "int8", "update")
MARGINAL_MODES = ("objsearch", "photos-only", "int8")
FAMILY_MODES = ("objsearch", "photos-only")
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


# -- arguments -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder of photos to index")
    p.add_argument(
        "--small", type=int, default=32, help="photos in the smaller folder of the marginal rate"
    )
    p.add_argument(
        "--large", type=int, default=96, help="photos in the larger folder of the marginal rate"
    )
    p.add_argument(
        "--limit", type=int, default=64, help="photos per run with --families and --ray (0 = all)"
    )
    p.add_argument(
        "--update-base", type=int, default=320, help="photos already indexed in the update mode"
    )
    p.add_argument(
        "--update-add", type=int, default=8, help="photos added before the timed update run"
    )
    p.add_argument(
        "--reference-limit",
        type=int,
        default=32,
        help="photos for the (slow) reference mode; photos/s is over what it ran (0 = --limit)",
    )
    p.add_argument("--detector", default=str(DEFAULT_DETECTOR), help="YOLO weights (.pt)")
    p.add_argument(
        "--clip-model",
        default=None,
        help="CLIP folder or hub id; default: a random ViT-B/32 cached in "
        "benchmarks/results/.clip-vitb32 (same cost as the real model)",
    )
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated subset of {', '.join(MODES)}",
    )
    p.add_argument(
        "--families",
        default="",
        help="comma-separated model families (clip, siglip, siglip2, altclip) to time with the "
        "objsearch modes, each with a random model of its benchmark shape; open_clip:NAME "
        f"times open_clip's architecture NAME ({', '.join(REAL_SHAPE_TAGS)})",
    )
    p.add_argument(
        "--write-speeds",
        action="store_true",
        help=f"with --families: store the table in {SPEEDS_FILE} for `objsearch models`",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of timed runs (over both folder sizes, or over all --families); the "
        "fastest run of each is kept",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="CLIP precision for the objsearch and photos-only modes (auto: bf16 on CPUs with "
        "bf16 units, fp16 on CUDA, else fp32); the int8 mode runs int8, the reference fp32",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "openvino"),
        help="inference backend for the objsearch modes (auto: OpenVINO on CPU when installed); "
        "the reference always runs PyTorch",
    )
    p.add_argument("--batch-size", type=int, default=16, help="Indexer photos per batch")
    p.add_argument(
        "--imgsz", type=int, default=640, help="detector input size of the objsearch CLI modes"
    )
    p.add_argument("--embed-batch-size", type=int, default=64, help="CLIP images per batch")
    p.add_argument("--workers", type=int, default=2, help="Indexer decode threads")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="set torch threads after the models are loaded and warmed up (0 = leave them "
        "as loading left them: ultralytics lowers them to min(8, cores - 1) on its first "
        "CPU predict)",
    )
    p.add_argument(
        "--check-precision",
        action="store_true",
        help="also embed real photos and crops with fp32, bf16 and int8 and report cosine and "
        "throughput (always on when the int8 mode runs)",
    )
    p.add_argument(
        "--precision-crops", type=int, default=64, help="photos + crops for the precision check"
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="also compare indexing on Ray (auto, local, ray://HOST:PORT) with the local "
        "pipeline over --limit/3 and --limit photos, and measure the driver's commit rate",
    )
    p.add_argument(
        "--output",
        default=str(RESULTS_DIR / "index_speed.json"),
        help="where to write the JSON results",
    )
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_worker-out", dest="worker_out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.family_list = [f.strip() for f in args.families.split(",") if f.strip()]
    known = {f.name for f in FAMILIES} | {OPEN_CLIP_PREFIX + n for n in REAL_SHAPE_TAGS}
    unknown_families = set(args.family_list) - known
    if unknown_families:
        p.error(f"unknown families {', '.join(sorted(unknown_families))}")
    if args.family_list:  # the reference loop is CLIP-only; int8 is timed by the CLI modes
        args.mode_list = [m for m in args.mode_list if m in FAMILY_MODES]
    unknown = [m for m in args.mode_list if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s) {', '.join(unknown)}: use {', '.join(MODES)}")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """Fail early, saying which flag to pass, when the shared assets are not there."""
    problems = []
    photos = Path(args.photos)
    if not photos.is_dir():
        problems.append(
            missing_asset_message("Photo folder", photos, "--photos", "DIR (a folder of photos)")
        )
    needs_detector = args.check_precision or any(
        m in ("reference", "objsearch", "int8") for m in args.mode_list
    )
    if needs_detector and not Path(args.detector).is_file():
        problems.append(
            missing_asset_message(
                "Detector weights",
                Path(args.detector),
                "--detector",
                "PATH (ultralytics YOLO .pt, e.g. yolo11n.pt)",
            )
        )
    if problems:
        sys.exit("error: " + "\n\n".join(problems))


def list_photos(folder: str, limit: int) -> list[str]:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(PHOTO_EXTENSIONS))
    paths = [os.path.abspath(os.path.join(folder, n)) for n in names]
    if not paths:
        sys.exit(f"error: no photos ({', '.join(PHOTO_EXTENSIONS)}) in {folder}; pass --photos DIR")
    return paths[:limit] if limit > 0 else paths


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def apply_threads(args: argparse.Namespace) -> int:
    """Apply ``--torch-threads`` (if given) and return the threads the timed run uses."""
    import torch

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    return torch.get_num_threads()


# -- reference: the naive detect-then-embed loop ----------------------------------------------------
def image_features(model: Any, pixel_values: Any) -> Any:
    """``get_image_features`` returns a tensor (transformers 4) or an output object (5)."""
    out = model.get_image_features(pixel_values=pixel_values)
    return out if hasattr(out, "norm") else out.pooler_output


def run_reference(args: argparse.Namespace, photos: list[str]) -> dict[str, Any]:
    import sqlite3

    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor
    from transformers.utils import logging as hf_logging
    from ultralytics import YOLO

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = args.device
    t = time.perf_counter()
    yolo = YOLO(args.detector)
    clip = CLIPModel.from_pretrained(args.clip_model).eval().to(device)
    processor = CLIPProcessor.from_pretrained(args.clip_model)
    load_s = time.perf_counter() - t

    def embed(image: Image.Image) -> np.ndarray:
        inputs = processor(images=image, return_tensors="pt")
        with torch.no_grad():
            feats = image_features(clip, inputs["pixel_values"].to(device))
        feats = feats / feats.norm(p=2, dim=-1, keepdim=True)
        return feats[0].cpu().numpy()

    t = time.perf_counter()
    yolo.predict(photos[0], device=device, verbose=False)
    embed(Image.open(photos[0]).convert("RGB"))
    warmup_s = time.perf_counter() - t
    threads = apply_threads(args)

    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE regions (id INTEGER PRIMARY KEY, photo TEXT, kind TEXT, x1 REAL, y1 REAL, "
        "x2 REAL, y2 REAL, label TEXT, vector BLOB)"
    )
    vectors: list[np.ndarray] = []
    timings = dict.fromkeys(STAGES, 0.0)
    objects = 0
    started = time.perf_counter()
    for path in photos:
        t = time.perf_counter()
        whole = Image.open(path).convert("RGB")
        timings["decode"] += time.perf_counter() - t

        t = time.perf_counter()
        result = yolo.predict(path, device=device, verbose=False)[0]
        boxes = result.boxes.xyxy.cpu().numpy()
        labels = [result.names[int(c)] for c in result.boxes.cls.cpu().numpy()]
        timings["detect"] += time.perf_counter() - t

        t = time.perf_counter()
        # As in the article: each crop re-opens its parent file and cuts the box out of it.
        crops = [Image.open(path).crop(tuple(float(v) for v in box)) for box in boxes]
        timings["crop"] += time.perf_counter() - t

        t = time.perf_counter()
        rows = [("image", (0.0, 0.0, float(whole.width), float(whole.height)), None, embed(whole))]
        for box, label, crop in zip(boxes, labels, crops, strict=True):
            rows.append(("object", tuple(float(v) for v in box), label, embed(crop)))
        timings["embed"] += time.perf_counter() - t

        t = time.perf_counter()
        for kind, box, label, vec in rows:
            vectors.append(vec)
            db.execute(
                "INSERT INTO regions (photo, kind, x1, y1, x2, y2, label, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (path, kind, *box, label, vec.astype(np.float32).tobytes()),
            )
        db.commit()
        timings["store"] += time.perf_counter() - t
        objects += len(boxes)
    seconds = time.perf_counter() - started
    return {
        "photos": len(photos),
        "objects": objects,
        "seconds": seconds,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "timings": timings,
        "precision": "fp32",
        "torch_threads": threads,
        "backend": "torch/torch",
        "regions_stored": int(db.execute("SELECT count(*) FROM regions").fetchone()[0]),
    }


# -- objsearch modes -----------------------------------------------------------------------
def run_objsearch(args: argparse.Namespace, photos: list[str], detect: bool) -> dict[str, Any]:
    import transformers  # noqa: F401  (imported before the clock, as in the reference)

    if detect:  # photos-only never imports ultralytics, like the indexer it measures
        import ultralytics  # noqa: F401

    from indexer import DetectOptions, Indexer
    from indexer.media.decode import read_photo

    t = time.perf_counter()
    embedder, detector = load_models(args, detect)
    load_s = time.perf_counter() - t

    t = time.perf_counter()
    warm = read_photo(photos[0]).image
    if detector is not None:
        detector.detect([warm], DetectOptions())
    embedder.embed_images([warm, warm.crop((0, 0, 64, 64))])
    warmup_s = time.perf_counter() - t
    threads = apply_threads(args)

    with tempfile.TemporaryDirectory(prefix="objsearch-bench-") as index_dir:
        indexer = Indexer(
            index_dir,
            clip_model=args.clip_model,
            device=args.device,
            precision=args.precision,
            backend=args.backend,
            detect_objects=detect,
            batch_size=args.batch_size,
            embed_batch_size=args.embed_batch_size,
            workers=args.workers,
            embedder=embedder,
            detector=detector,
        )
        stats = indexer.index(photos)
        timings = {k: float(v) for k, v in indexer.timings.items()}
    if stats.failures:
        log(f"warning: {stats.failures} photo(s) failed: {stats.failed[:3]}")
    return {
        "photos": stats.indexed,
        "objects": stats.objects,
        "seconds": stats.seconds,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "timings": {k: timings.get(k, 0.0) for k in ("scan", *STAGES)},
        "precision": embedder.precision,
        "torch_threads": threads,
        "backend": f"{embedder.backend}/{detector.backend if detector else '-'}",
        "stats": stats.to_dict(),
    }


# -- precision check -----------------------------------------------------------------------
def run_precision_check(args: argparse.Namespace, photos: list[str]) -> dict[str, Any]:
    """bf16 and int8 against fp32 on real photos and their detector crops: cosine and speed."""
    import numpy as np

    from indexer import ClipEmbedder, DetectOptions, Detector
    from indexer.indexing.regions import kept_detections, object_crops
    from indexer.media.decode import read_photo
    from indexer.settings import cpu_has_fast_bf16

    options = DetectOptions()
    detector = Detector(args.detector, args.device, backend=args.backend)
    images = []
    for path in photos:
        photo = read_photo(path)
        det = kept_detections(photo, detector.detect([photo.image], options)[0], options)
        images += [photo.image, *object_crops(photo, det, options.padding)]
        if len(images) >= args.precision_crops:
            break
    images = images[: args.precision_crops]
    embedders = {
        prec: ClipEmbedder(
            args.clip_model,
            args.device,
            precision=prec,
            batch_size=args.embed_batch_size,
            backend=args.backend,
        )
        for prec in ("fp32", "bf16", "int8")
    }
    inputs = embedders["fp32"].preprocess(images)
    for emb in embedders.values():
        emb.embed_inputs({k: v[:4] for k, v in inputs.items()})  # warm-up
    threads = apply_threads(args)
    best: dict[str, float] = {}
    vectors: dict[str, Any] = {}
    for _ in range(2):  # interleaved, best of two: robust to background load drifting
        for prec, emb in embedders.items():
            t = time.perf_counter()
            vectors[prec] = emb.embed_inputs(inputs)
            best[prec] = min(best.get(prec, float("inf")), time.perf_counter() - t)
    out = {}
    for prec in embedders:
        cos = np.sum(vectors["fp32"] * vectors[prec], axis=1)
        out[prec] = {
            "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean()),
            "images_per_s": len(images) / best[prec],
            "speedup": best["fp32"] / best[prec],
        }
    return {
        "crops": len(images),
        "precisions": out,
        "bf16_cpu_units": cpu_has_fast_bf16(),
        "torch_threads": threads,
        "backend": embedders["fp32"].backend,
    }


# -- worker / driver -----------------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    """Run one mode in this (fresh) process and write its JSON to ``--_worker-out``."""
    mode = args._worker
    load_before = os.getloadavg()[0]
    if mode == "reference":
        limit = args.reference_limit or args.limit
        result = run_reference(args, list_photos(args.photos, limit))
    elif mode == "objsearch":
        result = run_objsearch(args, list_photos(args.photos, args.limit), detect=True)
    elif mode == "photos-only":
        result = run_objsearch(args, list_photos(args.photos, args.limit), detect=False)
    elif mode == "precision":
        result = run_precision_check(args, list_photos(args.photos, 0))
    elif mode == "ray":
        from _ray import measure_commit_rate, run_ray_comparison

        result = run_ray_comparison(args, list_photos(args.photos, args.limit))
        result["commit"] = measure_commit_rate()
    else:
        raise SystemExit(f"unknown worker mode {mode!r}")
    result["peak_rss_mib"] = peak_rss_mib()
    result["load_avg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["machine"] = machine_info()
    with open(args.worker_out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


def spawn(mode: str, args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Re-run this script with ``--_worker MODE`` and read back its JSON."""
    fd, out = tempfile.mkstemp(prefix=f"index-speed-{mode}-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), *argv]
    cmd += ["--clip-model", args.clip_model, "--_worker", mode, "--_worker-out", out]
    log(f"[{mode}] running ...")
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.stdout.strip():
            log(proc.stdout.rstrip())
        if proc.returncode != 0:
            sys.exit(f"error: the {mode} worker failed (exit {proc.returncode}); see above")
        with open(out, encoding="utf-8") as fh:
            result = json.load(fh)
    finally:
        os.unlink(out)
    log(f"[{mode}] done in {time.perf_counter() - t:.1f} s")
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    photos, seconds = result["photos"], result["seconds"]
    regions = photos + result["objects"]
    result["photos_per_s"] = photos / seconds if seconds > 0 else 0.0
    result["regions_per_s"] = regions / seconds if seconds > 0 else 0.0
    result["objects_per_photo"] = result["objects"] / photos if photos else 0.0
    return result


def _best_runs(args: argparse.Namespace, raw: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each family's modes, ``--repeat`` rounds over all families; the fastest run of each.

    Rounds go over every family in turn, so a burst of load from other processes on a
    shared machine slows one run of each family rather than every run of one family.
    """
    best: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in args.family_list}
    for _ in range(max(1, args.repeat)):
        for name in args.family_list:
            args.clip_model = ensure_family_model(name)
            for mode in args.mode_list:
                run = summarise(spawn(mode, args, raw))
                kept = best[name].get(mode)
                if kept is None or run["photos_per_s"] > kept["photos_per_s"]:
                    best[name][mode] = run
    return best


def family_and_shape(name: str) -> tuple[Family, str]:
    """The family of a ``--families`` entry and the architecture it times."""
    if name.startswith(OPEN_CLIP_PREFIX):
        return family_named("open_clip"), name[len(OPEN_CLIP_PREFIX) :]
    family = family_named(name)
    return family, family.benchmark_shape


def run_families(args: argparse.Namespace, raw: list[str]) -> None:
    """The objsearch modes per family; prints a table and optionally stores it.

    With ``--write-speeds`` the measured families replace their entries in the stored
    table; families not in this run keep theirs (each entry says when and how it was run).
    """
    rows, measured = [], {}
    command = "python benchmarks/index_speed.py " + " ".join(raw)
    for name, results in _best_runs(args, raw).items():
        family, shape = family_and_shape(name)
        obj, only = results.get("objsearch"), results.get("photos-only")
        main_run = obj or only
        rows.append(
            [
                family.title,
                shape,
                fmt(obj["photos_per_s"]) if obj else "-",
                fmt(obj["regions_per_s"]) if obj else "-",
                fmt(only["photos_per_s"]) if only else "-",
                fmt(obj["timings"]["embed"], 1) if obj else "-",
                fmt(main_run["load_s"], 1),
                fmt(max(r["peak_rss_mib"] for r in results.values()), 0),
                main_run["backend"],
                main_run["precision"],
                " / ".join("→".join(fmt(x, 1) for x in r["load_avg"]) for r in results.values()),
            ]
        )
        measured[name] = {
            "family": family.name,
            "shape": shape,
            "photos_per_s": round(obj["photos_per_s"], 2) if obj else None,
            "regions_per_s": round(obj["regions_per_s"], 2) if obj else None,
            "photos_only_per_s": round(only["photos_per_s"], 2) if only else None,
            "objects_per_photo": round(obj["objects_per_photo"], 2) if obj else None,
            "photos": main_run["photos"],
            "backend": main_run["backend"],
            "precision": main_run["precision"],
            "load_avg": [r["load_avg"] for r in results.values()],
            "date": time.strftime("%Y-%m-%d"),
            "command": command,
        }
    headers = [
        "family",
        "shape (random weights)",
        "photos/s",
        "regions/s",
        "photos-only photos/s",
        "embed s",
        "model load s",
        "peak RSS MiB",
        "backend (model/detector)",
        "precision",
        "load avg",
    ]
    print(f"### Indexing speed by model family ({args.device}, photos from {args.photos})\n")
    print(markdown_table(headers, rows))
    machine = machine_info()
    write_json(args.output, {"machine": machine, "families": measured})
    if args.write_speeds:
        store_speeds(args, measured, command, machine)


def _noise(entries: Any, cpus: int) -> str:
    peak = max(x for f in entries for pair in f["load_avg"] for x in pair)
    if peak > cpus * 1.25:
        return (
            f"the load average reached {peak:.1f} on {cpus} cores (the machine was shared with "
            "other work), so the numbers are noisy"
        )
    return f"load average at most {peak:.1f} on {cpus} cores"


def store_speeds(
    args: argparse.Namespace, measured: dict[str, Any], command: str, machine: dict[str, Any]
) -> None:
    """Write the run into :data:`SPEEDS_FILE` for ``objsearch models``.

    A run of families replaces their entries (the others keep theirs, each saying when and
    how it was run). A run with ``open_clip:`` architectures is a side-by-side run: it
    replaces the ``models`` section whole, so its rows share one machine state.
    """
    stored = load_speeds() if SPEEDS_FILE.is_file() else {}
    cpus = machine.get("cpu_count") or 1
    about = {
        "what": f"photos/s indexing {args.limit} COCO photos (objects + whole photo, and photos only)",
        "machine": f"{cpus} CPU cores, {machine.get('cpu', 'CPU')}, no GPU",
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
        "noise": _noise(measured.values(), cpus),
    }
    if any(":" in name for name in measured):
        data = {**stored, "models": measured, "models_about": about}
    else:
        families = {**stored.get("families", {}), **measured}
        data = {
            **stored,
            **about,
            "date": max(f["date"] for f in families.values()),
            "noise": _noise(families.values(), cpus),
            "families": {f.name: families[f.name] for f in FAMILIES if f.name in families},
        }
    print(f"\nNote: {about['noise']}.")
    SPEEDS_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {SPEEDS_FILE}")


def main(argv: list[str] | None = None) -> None:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args._worker:
        worker(args)
        return
    check_inputs(args)
    if args.family_list:
        run_families(args, raw)
        return
    args.clip_model = ensure_clip_model(args.clip_model)
    if args.device == "cpu" and args.precision == "fp16":
        log("note: fp16 on CPU runs as fp32 in ClipEmbedder")

    photos = list_photos(args.photos, max(args.large, args.small))
    if len(photos) < args.large and set(args.mode_list) & set(MARGINAL_MODES):
        sys.exit(
            f"error: --large {args.large} needs that many photos; {args.photos} has {len(photos)}"
        )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="index-speed-folders-") as root:
        for mode in args.mode_list:
            if mode == "reference":
                results[mode] = summarise(spawn(mode, args, raw))
            elif mode == "update":
                results[mode] = measure_update(args, photos, Path(root))
            else:
                results[mode] = measure_mode(args, mode, photos, Path(root))
    wants_check = args.check_precision or "int8" in args.mode_list
    precision = spawn("precision", args, raw) if wants_check else None
    on_ray = spawn("ray", args, raw) if args.ray else None

    print_marginal(args, results)
    print_update(results.get("update"))
    print_targets(results)
    if precision is not None:
        print_precision(precision)
    if on_ray is not None:
        print_ray(on_ray, args.ray)

    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > cpus * 1.25:
        print(
            f"\nNote: load average {load:.1f} on {cpus} CPUs: other processes competed for the "
            "CPU, absolute numbers are noisy; the ratios are the more stable figures."
        )
    data = {
        "config": {
            k: v for k, v in vars(args).items() if not k.startswith("_") and k != "worker_out"
        },
        "machine": machine_info(),
        "modes": results,
        "precision_check": precision,
        "ray": on_ray,
    }
    write_json(args.output, data)
    log(f"wrote {args.output}")


def print_marginal(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Marginal rate, fixed cost and where each photo's time goes, per mode."""
    headers = [
        "mode",
        "photos/s (marginal)",
        "fixed cost s",
        "command start to first photo s",
        "objects/photo",
        f"wall s ({args.small} / {args.large})",
        "peak RSS MiB",
        *(f"{s} ms/photo" for s in STAGES),
        "load avg",
    ]
    rows = []
    for mode, r in results.items():
        if mode == "update":
            continue
        if mode == "reference":
            stages = [1000 * r["timings"].get(s, 0.0) / max(r["photos"], 1) for s in STAGES]
            rows.append(
                [
                    f"reference ({r['photos']} photos, models preloaded)",
                    fmt(r["photos_per_s"]),
                    fmt(r["load_s"] + r["warmup_s"], 1) + " (load + warm-up)",
                    "-",
                    fmt(r["objects_per_photo"], 1),
                    fmt(r["seconds"], 1),
                    fmt(r["peak_rss_mib"], 0),
                    *(fmt(v, 1) for v in stages),
                    "→".join(fmt(x, 1) for x in r["load_avg"]),
                ]
            )
            continue
        rows.append(
            [
                f"{mode} (`objsearch index`)",
                fmt(r["marginal_photos_per_s"]),
                fmt(r["fixed_s"], 1),
                fmt(r["first_photo_s"], 1),
                fmt(r["objects_per_photo"], 1),
                " / ".join(fmt(w, 1) for w in r["wall_s"]),
                fmt(r["peak_rss_mib"], 0),
                *(fmt(r["stage_ms_per_photo"].get(s, 0.0), 1) for s in STAGES),
                "→".join(fmt(x, 1) for x in r["load_avg"]),
            ]
        )
    if not rows:
        return
    print(f"### Indexing speed ({args.device}, photos from {args.photos})\n")
    print(markdown_table(headers, rows))
    print(
        "\nobjsearch rows time whole `objsearch index` commands from command start, into a fresh "
        f"index each, on {args.small} and {args.large} photos: photos/s is the marginal rate, "
        "the fixed cost the intercept. Stage ms/photo are marginal too (stage seconds of the "
        "large run minus the small one, per extra photo); decoding runs on a thread pool "
        "while the models work, so it overlaps the other stages."
    )
    ref, obj = results.get("reference"), results.get("objsearch")
    if ref and obj and ref["photos_per_s"] > 0:
        ratio = obj["marginal_photos_per_s"] / ref["photos_per_s"]
        print(f"\nobjsearch (marginal) against the reference loop: {ratio:.2f}x photos/s.")


# The targets: (what, where the value is in the results, bound, at least (True) or at most).
TARGETS: tuple[tuple[str, tuple[str, ...], float, bool], ...] = (
    (
        "object-aware indexing, default precision (photos/s, marginal)",
        ("objsearch", "marginal_photos_per_s"),
        20.0,
        True,
    ),
    (
        "object-aware indexing, --precision int8 (photos/s, marginal)",
        ("int8", "marginal_photos_per_s"),
        25.0,
        True,
    ),
    (
        "photos-only indexing (photos/s, marginal)",
        ("photos-only", "marginal_photos_per_s"),
        100.0,
        True,
    ),
    (
        "command start to first photo in the models, objsearch (s)",
        ("objsearch", "first_photo_s"),
        0.8,
        False,
    ),
    ("small update: photos added, `objsearch index` again (s)", ("update", "wall_s"), 1.4, False),
    (
        "peak RSS, objects-mode index of the base folder (MiB)",
        ("update", "base_peak_rss_mib"),
        700.0,
        False,
    ),
    (
        "cold `objsearch search` on the updated index, peak RSS (MiB)",
        ("update", "search", "peak_rss_mib"),
        400.0,
        False,
    ),
)


def print_update(r: dict[str, Any] | None) -> None:
    """The small update's row: the whole command, its start-up, memory and stages."""
    if not r:
        return
    print(f"\n### Small update: {r['added']} photos added to an indexed folder of {r['base']}\n")
    headers = [
        "run",
        "wall s",
        "command start to first photo s",
        "peak RSS MiB",
        *(f"{s} s" for s in STAGES),
    ]
    rows = [
        [
            f"`objsearch index` after adding {r['added']} photos (fastest of the rounds)",
            fmt(r["wall_s"], 2),
            fmt(r["first_photo_s"], 2),
            fmt(r["peak_rss_mib"], 0),
            *(fmt(r["stages"].get(s, 0.0), 2) for s in STAGES),
        ],
        [
            f"`objsearch index` of the {r['base']} photos into a new index "
            f"({r['base_objects']} objects)",
            fmt(r["base_wall_s"], 1),
            "-",
            fmt(r["base_peak_rss_mib"], 0),
            *("-" for _ in STAGES),
        ],
    ]
    search = r.get("search")
    if search:
        rows.append(
            [
                f'`objsearch search "{search["query"]}"` on the updated index '
                f"(median of {search['runs']} fresh processes)",
                fmt(search["median_wall_s"], 2),
                "-",
                fmt(search["peak_rss_mib"], 0),
                *("-" for _ in STAGES),
            ]
        )
    print(markdown_table(headers, rows))


def print_targets(results: dict[str, Any]) -> None:
    rows = []
    for what, path, bound, at_least in TARGETS:
        value: Any = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        met = value >= bound if at_least else value <= bound
        rows.append(
            [what, fmt(value), ("≥ " if at_least else "≤ ") + f"{bound:g}", "yes" if met else "no"]
        )
    if rows:
        print("\n### Targets\n")
        print(markdown_table(["target", "measured", "target", "met"], rows))


def print_precision(precision: dict[str, Any]) -> None:
    print("\n### Precision check (ClipEmbedder on real photos and their detector crops)\n")
    rows = [
        [
            name,
            precision["crops"],
            fmt(r["cosine_min"], 5),
            fmt(r["cosine_mean"], 5),
            fmt(r["images_per_s"], 1),
            f"{r['speedup']:.2f}x",
        ]
        for name, r in precision["precisions"].items()
    ]
    headers = ["precision", "images", "cosine vs fp32 min", "mean", "images/s", "vs fp32"]
    print(markdown_table(headers, rows))
    print(
        f"\nbackend {precision['backend']}, CPU bf16 units: {precision['bf16_cpu_units']}. "
        "With a random-weight model (the default here) the cosine is a numerical-fidelity "
        "check of the quantized graph only, not a measure of retrieval quality."
    )


def print_ray(r: dict[str, Any], address: str) -> None:
    n1, n2 = r["sizes"]
    print(
        f"\n### Ray ({address}) against the local pipeline: marginal rate over {n1} -> {n2} photos\n"
    )
    rows = [
        [
            "local pipeline",
            fmt(r["local_photos_per_s"]),
            "-",
            fmt(r["local_startup_s"], 1),
            "-",
            " / ".join(fmt(s, 1) for s in r["local_seconds"]),
        ],
        [
            f"Ray {address} ({r['ray_actors']} actor)",
            fmt(r["ray_photos_per_s"]),
            f"{100 * r['ray_overhead']:.0f}%",
            fmt(r["ray_startup_s"], 1),
            fmt(r["ray_cluster_start_s"], 1),
            " / ".join(fmt(s, 1) for s in r["ray_seconds"]),
        ],
    ]
    headers = [
        "pipeline",
        "photos/s (marginal)",
        "overhead",
        "start-up s per run",
        "cluster start s",
        f"wall s ({n1} / {n2} photos)",
    ]
    print(markdown_table(headers, rows))
    c = r["commit"]
    print(
        f"\nPer actor: {r['ray_photos_per_s_per_actor']:.2f} photos/s. Driver commit rate "
        f"(SQLite, batches of {c['batch']}, {c['regions_per_photo']} regions/photo, 512-d): "
        f"{c['rows_per_s']:,.0f} rows/s = {c['photos_per_s']:,.0f} photos/s; in the Ray run the "
        f"driver spent {r['ray_driver_store_s']:.2f} s committing {r['ray_driver_rows']} rows."
    )


if __name__ == "__main__":
    main()
