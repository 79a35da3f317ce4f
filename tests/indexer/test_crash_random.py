"""Randomized crash test: SIGKILL an index run at random moments, FAISS saves included.

Each trial starts ``Indexer.index`` in a child process over the same folder and index and
kills it at a moment drawn from a seeded generator: soon after the run starts (possibly
before anything is committed), once SQLite holds a few more photos, or inside a FAISS save
(the child slows the step between writing the temp file and renaming it into place, so
kills land there). After every kill SQLite must pass ``pragma integrity_check``, ``status``
must call the index consistent, and search must answer. A final resumed run must equal a
clean run. The seed and trial count are printed; set ``OBJSEARCH_CRASH_SEED`` to replay.
The children use the PyTorch backend, like the injected test models: each starts a fresh
interpreter, and OpenVINO would add its compile time to every trial without changing what a
kill can break.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer import DetectOptions, Indexer
from retrieval import Searcher
from retrieval.cli import app
from tests.fixtures import REPO_ROOT, Models, child_env, committed_photos, make_indexer, region_set

TRIALS = 11
N_PHOTOS = 56
BATCH = 4
OPTIONS = {"imgsz": 320, "max_objects": 3}
SAVE_PAUSE = 0.3  # seconds the child spends between writing a FAISS temp file and renaming it

CHILD = f"""
import sys, time
import faiss

write_index = faiss.write_index


def slow_write(index, path):
    write_index(index, path)
    print("save", flush=True)
    time.sleep({SAVE_PAUSE})


faiss.write_index = slow_write
from indexer import DetectOptions, Indexer

folder, index_dir, clip, yolo = sys.argv[1:5]
indexer = Indexer(
    index_dir, clip_model=clip, detector_weights=yolo, device="cpu", backend="torch",
    batch_size={BATCH}, options=DetectOptions(**{OPTIONS!r}), save_every=0.0,
)
print("start", flush=True)
indexer.index([folder])
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("random_crash_photos")
    rng = np.random.default_rng(1)
    for i in range(N_PHOTOS):
        size = ((64, 48), (48, 64), (72, 54))[i % 3]
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:03d}{('.jpg', '.png')[i % 2]}")
    return folder


class Child:
    """One index run in a child process, with its stdout markers read in the background."""

    def __init__(self, photo_dir: Path, index_dir: Path, models: Models) -> None:
        import threading

        env = child_env()
        args = [str(photo_dir), str(index_dir), str(models.clip_dir), str(models.yolo_path)]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.markers: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.markers.append(line.strip())

    def count(self, marker: str) -> int:
        return self.markers.count(marker)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def fail_unless_clean_exit(self) -> None:
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err[-3000:]


def kill_at(child: Child, mode: str, arg: int, delay: float, db: Path) -> bool:
    """Kill ``child`` at the moment described; False when the run finished first."""
    deadline = time.monotonic() + 180
    while child.proc.poll() is None and time.monotonic() < deadline:
        if (
            (mode == "early" and child.count("start") >= 1)
            or (mode == "commit" and committed_photos(db) >= arg)
            or (mode == "save" and child.count("save") >= arg)
        ):
            time.sleep(delay)
            if child.proc.poll() is not None:
                break
            child.kill()
            return True
        time.sleep(0.005)
    if child.proc.poll() is None:
        child.kill()
        pytest.fail("the index run neither reached its kill point nor finished in 180 s")
    child.fail_unless_clean_exit()
    return False


def assert_sound_after_kill(index_dir: Path, models: Models, note: str) -> None:
    db = index_dir / "objsearch.db"
    if not db.exists():
        return  # killed before the index was created: nothing to check
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)], note
    finally:
        con.close()
    result = CliRunner().invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, f"{note}: {result.output}"
    health = json.loads(result.stdout)
    assert health["consistent"] is True and health["problems"] == [], f"{note}: {health}"
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        hits = searcher.search(text="a cat", top_k=5)
    assert len(hits) == min(5, health["photos"]), note


@pytest.mark.slow
def test_random_sigkills_lose_nothing(photo_dir: Path, models: Models, tmp_path: Path) -> None:
    seed = int(os.environ.get("OBJSEARCH_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    print(f"\nrandomized crash test: {TRIALS} trials, seed {seed}")

    def indexer(index_dir: Path) -> Indexer:
        return make_indexer(models, index_dir, options=DetectOptions(**OPTIONS), batch_size=BATCH)

    reference = tmp_path / "reference"
    stats = indexer(reference).index([photo_dir])
    assert stats.indexed == N_PHOTOS and stats.failures == 0
    expected = region_set(reference)

    index_dir = tmp_path / "crashed"
    db = index_dir / "objsearch.db"
    landed: list[str] = []
    for trial in range(TRIALS):
        done = max(committed_photos(db), 0)
        # Near the end a commit or save target could lie beyond the last photo, and the run
        # would finish unkilled: kill those runs early instead, so every trial lands.
        if trial == 0 or N_PHOTOS - done <= 2 * BATCH:
            mode, arg = "early", 1
        else:
            mode = rng.choice(("commit", "save", "save"))
            arg = done + rng.randint(1, 2 * BATCH) if mode == "commit" else rng.randint(1, 2)
        delay = rng.uniform(0, 0.5 if mode == "early" else SAVE_PAUSE * 0.9)
        note = f"seed {seed}, trial {trial}: {mode} {arg} +{delay:.3f}s"
        if kill_at(Child(photo_dir, index_dir, models), mode, arg, delay, db):
            landed.append(f"{note} at {committed_photos(db)} photos")
        assert_sound_after_kill(index_dir, models, note)
    print("\n".join(landed))
    assert len(landed) >= 10, f"seed {seed}: only {len(landed)} kills landed mid-run"

    stats = indexer(index_dir).index([photo_dir])
    assert stats.failures == 0 and stats.indexed + stats.unchanged == N_PHOTOS
    assert region_set(index_dir) == expected, f"seed {seed}: the resumed index differs"
    result = CliRunner().invoke(app, ["status", "--index", str(index_dir), "--json"])
    health = json.loads(result.stdout)
    assert health["consistent"] and health["vectors_file"] == "fresh", health
    assert not [p for p in os.listdir(index_dir) if p.endswith(".tmp")]
