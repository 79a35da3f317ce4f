"""A full disk and a read-only index folder: clear message, non-zero exit, nothing half-written.

The disk is a small tmpfs that the test fills up as soon as the first batch is committed;
the read-only folder is a read-only bind mount (root ignores file modes). Both need
``mount``; where the platform refuses it the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from retrieval import Searcher
from retrieval.cli import app
from tests.fixtures import REPO_ROOT, Models, child_env, committed_photos, make_indexer
from tests.fixtures.mounts import fill, read_only, tmpfs

CLI = "from retrieval.cli import main; main()"


def make_photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for i in range(n):
        pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:03d}.png")
    return folder


def status(index_dir: Path) -> dict:
    result = CliRunner().invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def index_args(models: Models, folder: Path, index_dir: Path) -> list[str]:
    return [
        "index", str(folder), "--index", str(index_dir), "--clip-model", str(models.clip_dir),
        "--detector", str(models.yolo_path), "--device", "cpu", "--batch-size", "4",
    ]  # fmt: skip


def no_temp_files(index_dir: Path) -> bool:
    return not [p for p in os.listdir(index_dir) if p.endswith(".tmp")]


def test_full_disk_stops_with_a_clear_message_and_keeps_committed_work(
    models: Models, tmp_path: Path
) -> None:
    folder = make_photos(tmp_path / "photos", 40)
    with tmpfs(tmp_path / "disk", "8m") as disk:
        index_dir = disk / "index"
        db = index_dir / "objsearch.db"
        env = child_env()
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, *index_args(models, folder, index_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 180
        while proc.poll() is None and committed_photos(db) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        filler = fill(disk)
        before_fault = committed_photos(db)
        _, err = proc.communicate(timeout=180)
        assert before_fault >= 1, "the run finished before the disk filled up"
        assert proc.returncode != 0
        assert "disk is full" in err and "Traceback" not in err, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "disk is full" in errors[0], err  # one line, no dump
        assert no_temp_files(index_dir)

        # Still full: the index opens and answers with what was committed.
        health = status(index_dir)
        assert health["photos"] >= before_fault and health["consistent"], health
        with Searcher(index_dir, embedder=models.embedder) as searcher:
            assert len(searcher.search(text="a cat", top_k=100)) == health["photos"]
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        con.close()

        # Room again: the same command finishes the job.
        filler.unlink()
        result = CliRunner().invoke(app, [*index_args(models, folder, index_dir), "--json"])
        assert result.exit_code == 0, result.output
        health = status(index_dir)
        assert health["photos"] == 40 and health["vectors_file"] == "fresh"


def test_read_only_index_refuses_writes_and_still_searches(models: Models, tmp_path: Path) -> None:
    folder = make_photos(tmp_path / "photos", 3)
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([folder])
    (index_dir / "vectors.faiss").unlink()  # search must rebuild in memory, not write
    make_photos(tmp_path / "photos" / "more", 2)
    listing = sorted(os.listdir(index_dir))
    with read_only(index_dir):
        result = CliRunner().invoke(app, index_args(models, folder, index_dir))
        assert result.exit_code != 0
        assert "read-only" in result.stderr and "Traceback" not in result.output

        result = CliRunner().invoke(app, ["search", "a cat", "--index", str(index_dir), "--json"])
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)) == 3
        health = status(index_dir)
        assert health["photos"] == 3 and health["consistent"]
        assert sorted(os.listdir(index_dir)) == listing
    assert sorted(os.listdir(index_dir)) == listing  # nothing half-written behind the mount


def test_read_only_parent_fails_before_models_load(models: Models, tmp_path: Path) -> None:
    folder = make_photos(tmp_path / "photos", 1)
    parent = tmp_path / "parent"
    parent.mkdir()
    with read_only(parent):
        args = index_args(models, folder, parent / "index")
        args[args.index("--clip-model") + 1] = str(tmp_path / "no-such-clip")
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 4, result.output  # the folder error, not the model error
        assert "read-only" in result.stderr or "not writable" in result.stderr
    shutil.rmtree(parent)
