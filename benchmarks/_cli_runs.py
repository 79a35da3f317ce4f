"""Whole ``objsearch index`` commands timed from command start (used by index_speed.py).

Each run is a real CLI process (``python -m retrieval.cli index FOLDER --index NEW --json``)
on a folder of the first ``n`` photos, into a fresh index. Two folder sizes give the
marginal rate ``(n2 - n1) / (t2 - t1)`` (steady photos/s, start-up cancelled out) and the
fixed cost, the intercept ``t1 - n1 / rate``. The CLI's JSON carries the epoch second at
which the first photo entered the models (recorded by the Indexer) and the seconds spent
per stage; the command start is taken just before the process is spawned, so "command
start to first photo" includes the interpreter, imports, model loading and compiling.
A warm-up run on two photos first fills the conversion caches (conversion, int8
quantization, OpenVINO's compiled blobs), so every timed run sees them warm. Each run's
peak resident memory is the child's own ``ru_maxrss`` (from ``wait4``), spawned from a
small launcher so that this process's memory does not count (see ``_common.run_own_peak``).

The small update (:func:`measure_update`) is the everyday step: a folder of ``base`` photos
indexed once, then ``added`` more photos copied in and ``objsearch index`` run again. The
folder holds distinct files (each a copy of a COCO photo with its own JPEG comment, so
the same pixels but other bytes), as many as asked for whatever the source folder holds.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from _common import OwnRun, log, run_own_peak
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


def distinct_copies(photos: list[str], n: int, folder: Path, start: int = 0) -> list[Path]:
    """``n`` JPEG files in ``folder``, copies of ``photos`` (cycled) with distinct bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(start, start + n):
        data = Path(photos[i % len(photos)]).read_bytes()
        if data[:2] != b"\xff\xd8":
            sys.exit(f"error: {photos[i % len(photos)]} is not a JPEG; --update needs JPEGs")
        note = f"objsearch benchmark copy {i}".encode()
        comment = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
        path = folder / f"copy-{i:06d}.jpg"
        path.write_bytes(data[:2] + comment + data[2:])
        written.append(path)
    return written


def index_command(args: Namespace, folder: Path, index_dir: Path, flags: list[str]) -> list[str]:
    """``objsearch index FOLDER --index INDEX`` with the benchmark's models and settings."""
    cmd = [sys.executable, "-m", "retrieval.cli", "index", str(folder), "--index", str(index_dir)]
    cmd += ["--json", "--clip-model", args.clip_model, "--detector", args.detector]
    cmd += ["--device", args.device, "--backend", args.backend]
    cmd += ["--batch-size", str(args.batch_size)]
    if args.imgsz != DEFAULT_IMGSZ:
        cmd += ["--detector-imgsz", str(args.imgsz)]
    if "--precision" not in flags:
        cmd += ["--precision", args.precision]
    return cmd + flags


def run_ok(cmd: list[str]) -> OwnRun:
    """Run one objsearch command; stop the benchmark with its error output if it fails."""
    run = run_own_peak(cmd)
    if run.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return run


def run_index(cmd: list[str]) -> tuple[dict[str, Any], float, float, float]:
    """Run one index command: its JSON summary, start epoch, wall seconds and peak RSS."""
    run = run_ok(cmd)
    return (
        json.loads(run.stdout.strip().splitlines()[-1]),
        run.started,
        run.wall_s,
        run.peak_rss_mib,
    )


def cli_index(args: Namespace, folder: Path, flags: list[str]) -> dict[str, Any]:
    """One ``objsearch index`` process into a fresh index: wall time, first photo, stages."""
    index_dir = Path(tempfile.mkdtemp(prefix="objsearch-cli-bench-")) / "index"
    try:
        data, started, wall, rss = run_index(index_command(args, folder, index_dir, flags))
    finally:
        shutil.rmtree(index_dir.parent, ignore_errors=True)
    if data["failures"]:
        log(f"warning: {data['failures']} photo(s) failed in {folder}")
    at = data.get("models_started_at")
    return {
        "photos": data["indexed"],
        "objects": data["objects"],
        "wall_s": wall,
        "first_photo_s": (at - started) if at else None,
        "stages": data.get("stage_seconds", {}),
        "peak_rss_mib": rss,
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
        "peak_rss_mib": max(small["peak_rss_mib"], large["peak_rss_mib"]),
        "stage_ms_per_photo": per_photo_ms,
        "stages_large_s": large["stages"],
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def measure_update(args: Namespace, photos: list[str], root: Path) -> dict[str, Any]:
    """The small update: ``args.update_add`` photos added to an indexed folder of
    ``args.update_base``, then ``objsearch index`` (objects mode) run again.

    The base run (a fresh index of the whole folder) is timed for its peak memory. Each
    timed round takes the added photos out (a pruning run, untimed), puts them back and
    times the run that indexes them; the fastest round is kept.
    """
    base, add = args.update_base, args.update_add
    folder = root / f"update-{base}"
    index_dir = root / f"update-index-{base}"
    distinct_copies(photos, base, folder)
    extra = [p.name for p in distinct_copies(photos, add, root / "update-extra", start=base)]
    cmd = index_command(args, folder, index_dir, ["--json"])
    cli_index(args, photo_folder(photos, 2, root), [])  # warm the caches, untimed
    log(f"[update] indexing the base folder of {base} photos ...")
    first, _, base_wall, base_rss = run_index(cmd)
    best: dict[str, Any] | None = None
    for _ in range(max(2, args.repeat)):
        for name in extra:
            (folder / name).unlink(missing_ok=True)
        run_index(cmd)  # prunes the added photos
        for name in extra:
            shutil.copy(root / "update-extra" / name, folder / name)
        data, started, wall, rss = run_index(cmd)
        if data["indexed"] != add:
            sys.exit(f"error: the update run indexed {data['indexed']} photos, not {add}")
        at = data.get("models_started_at")
        run = {
            "wall_s": wall,
            "peak_rss_mib": rss,
            "first_photo_s": (at - started) if at else None,
            "stages": data.get("stage_seconds", {}),
        }
        log(f"[update] +{add} photos: {wall:.2f} s, {rss:.0f} MiB")
        if best is None or wall < best["wall_s"]:
            best = run
    search = cold_search(args, index_dir)
    shutil.rmtree(index_dir, ignore_errors=True)
    assert best is not None
    return {
        "base": base,
        "added": add,
        "base_wall_s": base_wall,
        "base_objects": first["objects"],
        "base_peak_rss_mib": base_rss,
        "search": search,
        **best,
    }


COLD_SEARCH_RUNS = 5


def cold_search(args: Namespace, index_dir: Path) -> dict[str, Any]:
    """``objsearch search "a dog"`` on the updated index, each run a fresh process (after
    one untimed run): the median wall time and the largest peak RSS of the runs."""
    cmd = [sys.executable, "-m", "retrieval.cli", "search", "a dog", "--index", str(index_dir)]
    cmd += ["--clip-model", args.clip_model, "--device", args.device, "--backend", args.backend]
    runs = []
    for i in range(COLD_SEARCH_RUNS + 1):
        run = run_ok(cmd)
        if i:  # the first run warms the conversion cache and the page cache
            runs.append(run)
    walls = sorted(r.wall_s for r in runs)
    result = {
        "query": "a dog",
        "runs": len(runs),
        "median_wall_s": walls[len(walls) // 2],
        "peak_rss_mib": max(r.peak_rss_mib for r in runs),
    }
    log(f"[update] cold search: {result['median_wall_s']:.2f} s, {result['peak_rss_mib']:.0f} MiB")
    return result
