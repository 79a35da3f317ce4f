"""Latency of ``objsearch serve --watch``: how soon a change in a watched folder shows.

Indexes two photos, starts a real ``objsearch serve --index I --watch FOLDER`` process
and, for each of ``--photos`` photos, copies it into the folder and polls the search API
until it is returned (copy -> searchable), then deletes it and polls until it is gone
(delete -> gone). Then it copies a burst of ``--burst`` photos at once and counts the
watcher's index batches (the server logs one line per batch) until every photo is stored.
Prints a markdown table with the targets beside the measurements and writes JSON.

The models are the tests' tiny random CLIP and YOLO (built once into
``benchmarks/results/.watch-tiny``), as the targets are stated for; ``--clip-model`` and
``--detector`` measure real-sized ones. Photos are the shared COCO photos when present
(burst variants: resized copies), else generated ones.

    python benchmarks/watch_latency.py
    python benchmarks/watch_latency.py --photos 8 --burst 200
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import (
    DEFAULT_PHOTOS,
    RESULTS_DIR,
    fmt,
    log,
    machine_info,
    markdown_table,
    percentile,
    running_server,
    setup_environment,
    write_json,
)

setup_environment()

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

API = "/api/v1"
TARGET_LATENCY_S = 5.0
TARGET_BATCHES = 20
POLL_S = 0.05
TIMEOUT_S = 600.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--photos", type=int, default=5, help="photos copied and deleted one by one")
    p.add_argument("--burst", type=int, default=200, help="photos copied at once")
    p.add_argument("--clip-model", help="CLIP folder [default: the tests' tiny random CLIP]")
    p.add_argument("--detector", help="detector .pt [default: the tests' tiny random YOLO]")
    p.add_argument("--source", default=str(DEFAULT_PHOTOS), help="photos to copy from")
    p.add_argument("--output", default=str(RESULTS_DIR / "watch_latency.json"))
    return p.parse_args(argv)


def tiny_models() -> tuple[str, str]:
    """The tests' tiny CLIP and YOLO, built once into the results folder."""
    from tests.model_factory import make_tiny_clip, make_tiny_yolo

    folder = RESULTS_DIR / ".watch-tiny"
    clip, yolo = folder / "clip", folder / "yolo" / "tiny-yolo11n.pt"
    if not (clip / "config.json").is_file() or not yolo.is_file():
        log(f"building the tiny test models into {folder} (once) ...")
        make_tiny_clip(clip)
        make_tiny_yolo(yolo)
    return str(clip), str(yolo)


def source_photos(source: Path, count: int, staging: Path) -> list[Path]:
    """``count`` distinct photos in ``staging``: the source's, then resized variants."""
    from tests.fixtures import write_photo

    staging.mkdir(parents=True)
    originals = sorted(source.glob("*.jpg")) if source.is_dir() else []
    photos = []
    for i in range(count):
        target = staging / f"w{i:04d}.jpg"
        if not originals:
            write_photo(target, size=(640, 480), seed=i)
        elif i < len(originals):
            shutil.copy(originals[i], target)
        else:  # every pass over the originals a little smaller: new bytes, same content
            with Image.open(originals[i % len(originals)]) as image:
                scale = 1 - 0.1 * (i // len(originals))
                image.resize((int(image.width * scale), int(image.height * scale))).save(target)
        photos.append(target)
    return photos


def returned(client: httpx.Client, path: Path) -> bool:
    hits = client.get(f"{API}/search", params={"q": "a photo", "k": 200, "kind": "image"})
    hits.raise_for_status()
    return str(path) in {h["image"] for h in hits.json()}


def wait_until(condition, what: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``condition()`` holds, polled every POLL_S."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > TIMEOUT_S:
            raise SystemExit(f"{what}: not within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def measure(url: str, folder: Path, photos: list[Path], burst: list[Path], log_path: Path) -> dict:
    with httpx.Client(base_url=url, timeout=120) as client:
        watch = lambda: client.get(f"{API}/status").json()  # noqa: E731
        wait_until(lambda: watch()["watch"]["last_batch_at"], "the catch-up")
        added, deleted = [], []
        for photo in photos:
            target = folder / photo.name
            started = time.perf_counter()
            shutil.copy(photo, target)
            wait_until(lambda t=target: returned(client, t), "copy")  # type: ignore[misc]
            added.append(time.perf_counter() - started)
            started = time.perf_counter()
            target.unlink()
            wait_until(lambda t=target: not returned(client, t), "delete")  # type: ignore[misc]
            deleted.append(time.perf_counter() - started)
            log(f"  {photo.name}: searchable {added[-1]:.2f} s, gone {deleted[-1]:.2f} s")
        before = log_path.read_text(errors="replace").count("watch batch:")
        photos_before = watch()["photos"]
        started = time.perf_counter()
        for photo in burst:
            shutil.copy(photo, folder / photo.name)
        wait_until(lambda: watch()["photos"] == photos_before + len(burst), "the burst")
        burst_s = time.perf_counter() - started
        wait_until(lambda: watch()["watch"]["state"] == "idle", "idle")
    batches = log_path.read_text(errors="replace").count("watch batch:") - before
    return {"added_s": added, "deleted_s": deleted, "burst_s": burst_s, "burst_batches": batches}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clip, yolo = tiny_models() if not (args.clip_model and args.detector) else ("", "")
    clip, yolo = args.clip_model or clip, args.detector or yolo
    with tempfile.TemporaryDirectory(prefix="watch-latency-") as tmp:
        root = Path(tmp)
        staging = source_photos(Path(args.source), args.photos + args.burst + 2, root / "staging")
        folder = root / "photos"
        folder.mkdir()
        for photo in staging[:2]:
            shutil.copy(photo, folder / photo.name)
        from typer.testing import CliRunner

        from retrieval.cli import app

        index = root / "index"
        command = ["index", str(folder), "--index", str(index), "--clip-model", clip]
        result = CliRunner().invoke(app, [*command, "--detector", yolo, "--device", "cpu"])
        if result.exit_code:
            raise SystemExit(f"indexing failed: {result.output}")
        log_path = root / "server.log"
        with running_server(index, clip, "--watch", str(folder), log_path=log_path) as url:
            log(f"watching {folder} through {url}")
            found = measure(url, folder, staging[2 : 2 + args.photos], staging[2 + args.photos :], log_path)  # fmt: skip
    rows = [
        ["copy -> searchable (s)", fmt(percentile(found["added_s"], 50)),
         fmt(max(found["added_s"])), f"<= {TARGET_LATENCY_S:.0f} s"],
        ["delete -> gone from results (s)", fmt(percentile(found["deleted_s"], 50)),
         fmt(max(found["deleted_s"])), f"<= {TARGET_LATENCY_S:.0f} s"],
        [f"burst of {args.burst}: index batches", "-", str(found["burst_batches"]),
         f"<= {TARGET_BATCHES}"],
        [f"burst of {args.burst}: copy -> all stored (s)", "-", fmt(found["burst_s"]), "-"],
    ]  # fmt: skip
    print(markdown_table(["measure", "p50", "max", "target"], rows))
    write_json(args.output, {"results": found, "args": vars(args), "machine": machine_info()})


if __name__ == "__main__":
    main()
