"""The import rule: once the models are converted, CPU runs import no torch, transformers,
torchvision or ultralytics (each command runs in a fresh process, as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import write_photo

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "torchvision", "transformers", "ultralytics")

# Runs ``objsearch ARGS`` in this process, then reports its exit code and which heavy
# packages were imported. A search normally ends without the interpreter's teardown; here
# it raises instead, so the report is written.
CHILD = """
import json, sys
import retrieval.cli as cli

def finish(code):
    raise SystemExit(code)

cli._quick_exit = finish
report, args = sys.argv[1], sys.argv[2:]
sys.argv = ["objsearch", *args]
code = 0
try:
    cli.main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
heavy = sorted(m for m in HEAVY if m in sys.modules)
with open(report, "w") as fh:
    json.dump({"code": code, "heavy": heavy}, fh)
""".replace("HEAVY", repr(HEAVY))


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[dict, str]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(report), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert report.is_file(), proc.stderr
    return json.loads(report.read_text()), proc.stdout


@pytest.mark.slow  # converts the tiny models once, then four more CLI processes
def test_converted_models_run_without_torch(models, tmp_path) -> None:
    folder, index_dir = tmp_path / "photos", tmp_path / "index"
    for i in range(3):
        write_photo(folder / f"p{i}.jpg", (160, 120), seed=i)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "OBJSEARCH_CACHE": str(tmp_path / "cache"),  # a fresh cache: the first run converts
    }
    base = [
        "--index",
        str(index_dir),
        "--clip-model",
        str(models.clip_dir),
        "--detector",
        str(models.yolo_path),
    ]
    first, _ = run_cli(tmp_path, env, "index", str(folder), *base)
    assert first["code"] == 0
    assert "torch" in first["heavy"]  # converting needs the full stack, once

    for i in range(3, 5):  # the small update: a few photos added, the index run again
        write_photo(folder / f"p{i}.jpg", (160, 120), seed=i)
    second, out = run_cli(tmp_path, env, "index", str(folder), *base, "--json")
    assert second == {"code": 0, "heavy": []}
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["indexed"] == 2 and stats["unchanged"] == 3 and stats["failures"] == 0

    text, out = run_cli(tmp_path, env, "search", "a cat", "--index", str(index_dir), "--json")
    assert text == {"code": 0, "heavy": []}
    assert json.loads(out)  # results, not an empty answer

    image, out = run_cli(
        tmp_path, env, "search", "--image", str(folder / "p0.jpg"), "--index", str(index_dir)
    )
    assert image == {"code": 0, "heavy": []}
    assert "p0.jpg" in out
