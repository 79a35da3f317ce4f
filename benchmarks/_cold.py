"""The cold-CLI row: a whole ``objsearch search "a dog" --index I`` process, timed.

Called from ``benchmarks/query_speed.py`` (``--cold-cli``; on by default when the sizes
include 10,000 regions). One warm-up run fills the conversion cache (the first run on a
machine converts the model and records what a torch-free text search needs); then the
command runs ``runs`` times, each a fresh process, and the median wall-clock time is the
row. A breakdown comes from the same command run in-process with timers wrapped around the
real functions it calls (store open, text encoder load and compile, probe check, encoding,
FAISS load, search + SQLite join), medians over ``runs`` fresh processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, fmt, markdown_table

TARGET_S = 1.0
QUERY = "a dog"

# Run inside a fresh interpreter: wraps the functions a text search goes through with
# timers, runs the CLI's own ``main`` and writes the stage times as JSON to REPORT.
_BREAKDOWN = r"""
import importlib.machinery, json, sys, time
T = time.perf_counter
start = T()
totals, marks = {}, {}
def timed(owner, name, stage):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        t = T()
        marks.setdefault(stage + " start", t - start)
        try:
            return inner(*args, **kwargs)
        finally:
            totals[stage] = totals.get(stage, 0.0) + T() - t
            marks[stage + " end"] = T() - start
    setattr(owner, name, wrapper)
def text(m):
    timed(m, "import_openvino", "openvino import")
    timed(m, "compile_ir", "text tower compile")
    timed(m, "load_text_encoder", "text encoder load")
    timed(m.TextQueries, "fingerprint", "probe encoding")
    timed(m.TextQueries, "embed_text", "encode query")
def preload(m):
    timed(m, "preload_text_encoder", "preload start")
    timed(m.TextPreload, "result", "wait for the text encoder")
def database(m):
    timed(m.Store, "__init__", "store open")
    timed(m.Store, "load_vectors", "FAISS load")
    timed(m.Store, "regions_with_photos", "SQLite join")
def searcher(m):
    timed(m, "model_mismatch", "probe check")
    timed(m.Searcher, "search_vector", "search")
PATCHES = {
    "indexer.models.text": text,
    "retrieval.search.preload": preload,
    "indexer.store.database": database,
    "retrieval.search.searcher": searcher,
}
class AfterImport:
    # Wraps functions as their modules are imported, so every import happens where the
    # command itself makes it (and overlaps what it overlaps there).
    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            run = spec.loader.exec_module
            def exec_module(module):
                run(module)
                PATCHES[name](module)
            spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, AfterImport())
import retrieval.cli
imports = T() - start
retrieval.cli._quick_exit = sys.exit  # end normally, so this breakdown gets written
sys.argv = ["objsearch", "search", *json.loads(sys.argv[1])]
try:
    retrieval.cli.main()
except SystemExit:
    pass
totals["imports"] = imports
totals["searcher import"] = marks.get("store open start", 0.0) - marks.get("preload start end", imports)
totals["total in process"] = T() - start
totals["torch imported"] = float("torch" in sys.modules)
with open(REPORT, "w") as fh:
    json.dump(totals, fh)
"""


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)}


def _command(index_dir: Path, query: str) -> list[str]:
    return [sys.executable, "-m", "retrieval.cli", "search", query, "--index", str(index_dir)]


def _wall(index_dir: Path, query: str) -> float:
    t = time.perf_counter()
    run = subprocess.run(_command(index_dir, query), capture_output=True, text=True, env=_env())
    seconds = time.perf_counter() - t
    if run.returncode != 0:
        raise RuntimeError(f"objsearch search failed: {run.stderr.strip()[-500:]}")
    return seconds


def _breakdown(index_dir: Path, query: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="objsearch-cold-") as tmp:
        report = Path(tmp) / "report.json"
        code = _BREAKDOWN.replace("REPORT", repr(str(report)))
        args = json.dumps([query, "--index", str(index_dir)])
        run = subprocess.run(
            [sys.executable, "-c", code, args], capture_output=True, text=True, env=_env()
        )
        if not report.is_file():
            raise RuntimeError(f"cold breakdown failed: {run.stderr.strip()[-500:]}")
        return json.loads(report.read_text())


def measure_cold(index_dir: Path, runs: int = 5, query: str = QUERY) -> dict[str, Any]:
    """Median wall-clock of ``runs`` cold ``objsearch search`` processes, and a breakdown."""
    load_before = os.getloadavg()[0]
    warm_up = _wall(index_dir, query)  # fills the conversion cache when it is empty
    walls = [_wall(index_dir, query) for _ in range(runs)]
    parts = [_breakdown(index_dir, query) for _ in range(runs)]
    stages = {name: statistics.median(p.get(name, 0.0) for p in parts) for name in parts[0]}
    return {
        "query": query,
        "index": str(index_dir),
        "runs": runs,
        "warm_up_s": warm_up,
        "walls_s": walls,
        "median_s": statistics.median(walls),
        "target_s": TARGET_S,
        "stages_s": stages,
        "torch_free": all(not p.get("torch imported") for p in parts),
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def print_cold(result: dict[str, Any], regions: int) -> None:
    """The cold-CLI table (target next to the measurement) and its breakdown."""
    walls = result["walls_s"]
    print(f"\n### Cold text search: a whole `objsearch search {result['query']!r}` process\n")
    print(
        markdown_table(
            [
                "regions",
                "target s",
                f"median s ({result['runs']} runs)",
                "min / max s",
                "met",
                "torch imported",
                "load avg before → after",
            ],
            [
                [
                    f"{regions:,}",
                    fmt(result["target_s"], 1),
                    fmt(result["median_s"]),
                    f"{fmt(min(walls))} / {fmt(max(walls))}",
                    "yes" if result["median_s"] <= result["target_s"] else "no",
                    "no" if result["torch_free"] else "yes",
                    "→".join(fmt(x, 1) for x in result["load_avg"]),
                ]
            ],
        )
    )
    stages = result["stages_s"]
    main_thread = [
        ("imports (`import retrieval.cli`: typer, rich, numpy)", "imports"),
        ("searcher import (SQLAlchemy, filters; overlaps the thread)", "searcher import"),
        ("store open (SQLite, schema check)", "store open"),
        ("FAISS load (import + read)", "FAISS load"),
        ("wait for the text encoder", "wait for the text encoder"),
        ("probe check", "probe check"),
        ("encode query (prompt templates)", "encode query"),
        ("search (FAISS + grouping + join)", "search"),
    ]
    thread = [
        ("text encoder load (tokenizer, recipe, compile)", "text encoder load"),
        ("  of which openvino import", "openvino import"),
        ("  of which text tower compile (blob cache)", "text tower compile"),
        ("probe encoding (first inference)", "probe encoding"),
    ]
    rows = [[label, "main", fmt(1000 * stages.get(key, 0.0), 0)] for label, key in main_thread]
    accounted = sum(stages.get(key, 0.0) for _, key in main_thread)
    total = stages["total in process"]
    rows.append(
        ["other (typer parsing, output, close)", "main", fmt(1000 * (total - accounted), 0)]
    )
    rows += [[label, "text thread", fmt(1000 * stages.get(key, 0.0), 0)] for label, key in thread]
    rows.append(["total in process", "", fmt(1000 * total, 0)])
    rows.append(
        [
            "wall − in process (interpreter start-up; breakdown runs are separate processes)",
            "",
            fmt(1000 * (result["median_s"] - total), 0),
        ]
    )
    print("\nWhere the time goes (medians of fresh in-process runs with timers):\n")
    print(markdown_table(["stage", "thread", "ms"], rows))
