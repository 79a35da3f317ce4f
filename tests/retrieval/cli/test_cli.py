"""The ``objsearch`` command line, run for real over a tiny-model index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.store import Store
from retrieval.cli import app
from tests.fixtures import Models, child_env, cli_index_args, write_photo


def run(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def test_index_then_search_status_export_doctor(models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        write_photo(folder / f"p{i}.jpg", seed=i)
    index_dir = tmp_path / "index"

    result = run(*cli_index_args(models, folder, index_dir), "--max-objects", "2", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert (stats["indexed"], stats["failures"]) == (3, 0)

    result = run("search", "a cat", "--index", str(index_dir), "--top-k", "2", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert [h["rank"] for h in hits] == [1, 2]
    assert all(Path(h["image"]).parent == folder for h in hits)

    result = run("search", "a cat", "--index", str(index_dir))
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()  # piped: tab-separated, one row per photo
    assert header.split("\t") == ["#", "score", "photo", "box", "label", "taken"]
    assert len(rows) == 3 and all(row.split("\t")[2].startswith(str(folder)) for row in rows)

    result = run("status", "--index", str(index_dir), "--json")
    assert result.exit_code == 0, result.output
    health = json.loads(result.stdout)
    assert health["photos"] == 3 and health["consistent"] is True
    assert health["vectors"] == health["objects"] + health["images"]

    out = tmp_path / "export.jsonl"
    result = run("export", "--index", str(index_dir), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 3

    result = run("doctor", "--index", str(index_dir))
    assert result.exit_code == 0 and "nothing to repair" in result.stdout
    with Store(index_dir) as store:
        assert store.counts().photos == 3


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("search", "--index", "{missing}", "a cat"), 4, "No objsearch index"),
        (("search", "--index", "{index}"), 2, "QUERY: give a text query"),
        (("search", "--index", "{index}", "  "), 2, "empty"),
        (("search", "--index", "{index}", "x", "--objects-only", "--photos-only"), 2, "exclude"),
        (("status", "--index", "{missing}"), 4, "No objsearch index"),
        (("index", "{missing}", "--index", "{index}", "--faiss-index", "lsh"), 2, "FAISS"),
    ],
)
def test_errors_are_one_line_and_an_exit_code(
    tiny_index: Path, tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    values = {"index": str(tiny_index), "missing": str(tmp_path / "nothing")}
    result = run(*(a.format(**values) for a in args))
    assert result.exit_code == code, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_localize_json(models: Models, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    write_photo(photo, size=(128, 96))
    overlay = tmp_path / "boxes.png"
    result = run(
        "localize",
        str(photo),
        "a cat",
        "a dog",
        "--clip-model",
        str(models.clip_dir),
        "--device",
        "cpu",
        "--max-windows",
        "16",
        "--out",
        str(overlay),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["image"] == str(photo)
    assert [p["prompt"] for p in data["prompts"]] == ["a cat", "a dog"]
    assert overlay.is_file()


def test_console_entry_point_runs() -> None:
    env = child_env()
    proc = subprocess.run(
        [sys.executable, "-c", "from retrieval.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("index", "search", "localize", "export", "status", "doctor"):
        assert command in proc.stdout


def test_detector_input_size_is_an_option(models: Models, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    write_photo(tmp_path / "photos" / "a.jpg")
    args = cli_index_args(models, tmp_path / "photos", tmp_path / "index")
    bad = run(*args, "--detector-imgsz", "8")
    assert bad.exit_code != 0
    assert "detector input size" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "index").exists()
    good = run(*args, "--detector-imgsz", "320", "--json")
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout.strip().splitlines()[-1])["indexed"] == 1


def test_index_and_search_with_the_compressed_index(models: Models, tmp_path: Path) -> None:
    """``--faiss-index ivfpq`` end to end: the same answers as an exact index of the photos."""
    folder = tmp_path / "photos"
    for i in range(16):
        write_photo(folder / ("a" if i % 2 else "b") / f"p{i}.jpg", seed=i)
    index_dir = tmp_path / "index"
    result = run(*cli_index_args(models, folder, index_dir), "--faiss-index", "ivfpq")
    assert result.exit_code == 0, result.output
    health = json.loads(run("status", "--index", str(index_dir), "--json").stdout)
    assert health["faiss_kind"] == "ivfpq" and health["vectors_file"] == "fresh"
    exact_dir = tmp_path / "exact"
    shutil.copytree(index_dir, exact_dir)
    with Store(exact_dir) as store:
        assert store.compact_vectors("flat").index_type == "flat"

    def hits(index: Path, *args: str) -> list[tuple[int, float]]:
        found = run("search", "a cat", "--index", str(index), "--group", "object", "--json", *args)
        assert found.exit_code == 0, found.output
        return [(h["region_id"], round(h["score"], 5)) for h in json.loads(found.stdout)]

    for args in ((), ("--in", str(folder / "a")), ("--objects-only",)):
        assert hits(index_dir, *args) == hits(exact_dir, *args)
        assert len(hits(index_dir, *args)) == 10
    (folder / "a" / "p1.jpg").unlink()
    result = run(*cli_index_args(models, folder, index_dir), "--faiss-index", "ivfpq")
    assert result.exit_code == 0, result.output
    result = run("search", "a cat", "--index", str(index_dir), "--top-k", "20", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 15
    assert all(not h["image"].endswith("p1.jpg") for h in json.loads(result.stdout))
    result = run("doctor", "--index", str(index_dir))
    assert result.exit_code == 0, result.output
