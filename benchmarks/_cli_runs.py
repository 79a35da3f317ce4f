"""Whole ``objsearch index`` commands timed from command start (used by index_speed.py).

Each run is a real CLI process (``python -m retrieval.cli index FOLDER --index NEW --json``)
on a folder of the first ``n`` photos, into a fresh index. Two folder sizes give the
marginal rate ``(n2 - n1) / (t2 - t1)`` (steady photos/s, start-up cancelled out) and the
fixed cost, the intercept ``t1 - n1 / rate``. The CLI's JSON carries the epoch second at
which the first photo entered the models (recorded by the Indexer) and the seconds spent
per stage; the command start is taken just before the process is spawned, so "command
start to first photo" includes the interpreter, imports, model loading and compiling.
A warm-up run on two photos first fills the conversion caches (conversion, int8
quantization, OpenVINO's compiled blobs), so every timed run sees them warm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, log
from _ray import marginal

# The CLI flags each mode adds to ``objsearch index``.
CLI_MODES: dict[str, list[str]] = {
    "objsearch": [],
    "photos-only": ["--photos-only"],
    "int8": ["--precision", "int8"],
}
DEFAULT_IMGSZ = 640  # the CLI's own default: left out of the command line
STAGES = ("decode", "detect", "crop", "preprocess", "embed", "store")


def photo_folder(photos: list[str], n: int, root: Path) -> Path:
    """A folder of symlinks to the first ``n`` photos (made once per size)."""
    folder = root / f"photos-{n}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for path in photos[:n]:
            os.symlink(path, folder / os.path.basename(path))
    return folder


def cli_index(args: Namespace, folder: Path, flags: list[str]) -> dict[str, Any]:
    """One ``objsearch index`` process into a fresh index: wall time, first photo, stages."""
    index_dir = Path(tempfile.mkdtemp(prefix="objsearch-cli-bench-")) / "index"
    cmd = [sys.executable, "-m", "retrieval.cli", "index", str(folder), "--index", str(index_dir)]
    cmd += ["--json", "--clip-model", args.clip_model, "--detector", args.detector]
    cmd += ["--device", args.device, "--backend", args.backend]
    cmd += ["--batch-size", str(args.batch_size)]
    if args.imgsz != DEFAULT_IMGSZ:
        cmd += ["--detector-imgsz", str(args.imgsz)]
    if "--precision" not in flags:
        cmd += ["--precision", args.precision]
    cmd += flags
    try:
        started = time.time()
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
    finally:
        shutil.rmtree(index_dir.parent, ignore_errors=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    if data["failures"]:
        log(f"warning: {data['failures']} photo(s) failed in {folder}")
    at = data.get("models_started_at")
    return {
        "photos": data["indexed"],
        "objects": data["objects"],
        "wall_s": wall,
        "first_photo_s": (at - started) if at else None,
        "stages": data.get("stage_seconds", {}),
    }


def measure_mode(args: Namespace, mode: str, photos: list[str], root: Path) -> dict[str, Any]:
    """Marginal rate, fixed cost and stage costs of one mode over the two folder sizes."""
    flags = CLI_MODES[mode]
    n1, n2 = args.small, args.large
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    cli_index(args, photo_folder(photos, 2, root), flags)  # warm the caches, untimed
    log(f"[{mode}] warm-up run {time.perf_counter() - t:.1f} s")
    best: dict[int, dict[str, Any]] = {}
    for _ in range(max(1, args.repeat)):
        for n in (n1, n2):
            run = cli_index(args, photo_folder(photos, n, root), flags)
            log(f"[{mode}] {n} photos: {run['wall_s']:.1f} s")
            if n not in best or run["wall_s"] < best[n]["wall_s"]:
                best[n] = run
    small, large = best[n1], best[n2]
    rate, fixed = marginal((small["photos"], large["photos"]), (small["wall_s"], large["wall_s"]))
    extra = max(large["photos"] - small["photos"], 1)
    per_photo_ms = {
        s: 1000 * (large["stages"].get(s, 0.0) - small["stages"].get(s, 0.0)) / extra
        for s in STAGES
    }
    firsts = [r["first_photo_s"] for r in best.values() if r["first_photo_s"] is not None]
    return {
        "sizes": [small["photos"], large["photos"]],
        "wall_s": [small["wall_s"], large["wall_s"]],
        "marginal_photos_per_s": rate,
        "fixed_s": fixed,
        "first_photo_s": min(firsts) if firsts else None,
        "objects_per_photo": large["objects"] / max(large["photos"], 1),
        "stage_ms_per_photo": per_photo_ms,
        "stages_large_s": large["stages"],
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
