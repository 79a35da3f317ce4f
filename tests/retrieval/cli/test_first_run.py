"""A new user's first run: paths with ``~``, misspelled folders, bad arguments, piped output.

Everything goes through the ``objsearch`` command line (typer's runner) or the public Python
API with the tiny test models, the way a person following the README would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer import Indexer, ObjsearchError
from retrieval import Searcher
from retrieval.cli import app
from tests.fixtures import REPO_ROOT, Models, cli_index_args, make_indexer

DATA = REPO_ROOT / "data"


def cli(*args: str) -> object:
    """Run ``objsearch ARGS`` in-process; stdout and stderr come back separately."""
    return CliRunner().invoke(app, [str(a) for a in args])


def photos(folder: Path, n: int = 2) -> Path:
    """``n`` small photos copied from the repository's sample pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted(DATA.glob("*.jpg"))[:n]:
        shutil.copy(src, folder / src.name)
    return folder


def api_indexer(models: Models, index_dir: str | Path, **kwargs: object) -> Indexer:
    return make_indexer(models, index_dir, **kwargs)


def status(index_dir: Path) -> dict:
    result = cli("status", "--index", index_dir, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def built(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of two sample photos, built through the command line."""
    root = tmp_path_factory.mktemp("first_run")
    folder = photos(root / "photos")
    index_dir = root / "index"
    result = cli(*cli_index_args(models, folder, index_dir))
    assert result.exit_code == 0, result.output
    return index_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``~`` for the test (expanduser reads HOME)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


# -- item 2: ~ in every path ---------------------------------------------------------------
def test_python_api_expands_tilde(models: Models, home: Path, tmp_path: Path) -> None:
    photos(home / "Photos")
    stats = api_indexer(models, "~/my-index").index(["~/Photos"])
    assert stats.indexed == 2 and stats.failures == 0
    assert (home / "my-index").is_dir()
    with Searcher("~/my-index", embedder=models.embedder) as searcher:
        hits = searcher.search(text="a ball", top_k=5)
        by_example = searcher.search(image="~/Photos/beach_ball.jpg", top_k=1)
    assert {h.image for h in hits} == {str(p) for p in (home / "Photos").iterdir()}
    assert by_example[0].image == str(home / "Photos" / "beach_ball.jpg")


def test_command_line_expands_tilde_in_every_path(models: Models, home: Path) -> None:
    photos(home / "Photos")
    (home / "models").mkdir()
    os.symlink(models.clip_dir, home / "models" / "clip")
    shutil.copy(models.yolo_path, home / "models" / "yolo.pt")
    result = cli(
        "index", "~/Photos", "--index", "~/idx", "--clip-model", "~/models/clip",
        "--detector", "~/models/yolo.pt", "--device", "cpu", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["indexed"] == 2
    result = cli("search", "--image", "~/Photos/beach_ball.jpg", "--index", "~/idx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["image"] == str(home / "Photos" / "beach_ball.jpg")
    result = cli("export", "--index", "~/idx", "--output", "~/photos.jsonl")
    assert result.exit_code == 0, result.output
    assert len((home / "photos.jsonl").read_text().splitlines()) == 2


# -- items 2 and 3: missing folders ----------------------------------------------------------
def test_api_run_where_every_folder_is_missing_is_an_error(models: Models, tmp_path: Path) -> None:
    with pytest.raises(ObjsearchError, match="no such"):
        api_indexer(models, tmp_path / "index").index([tmp_path / "Photoss", tmp_path / "nope"])
    assert not (tmp_path / "index").exists()


def test_misspelled_folder_is_a_usage_error_and_stores_nothing(
    models: Models, built: Path, tmp_path: Path
) -> None:
    new_index = tmp_path / "new-index"
    result = cli(*cli_index_args(models, tmp_path / "Photoss", new_index))
    assert result.exit_code != 0
    assert "no such" in result.stderr.lower() and "Photoss" in result.stderr
    assert "Traceback" not in result.output
    assert not new_index.exists()

    before = status(built)
    result = cli(*cli_index_args(models, tmp_path / "Photoss", built))
    assert result.exit_code != 0
    after = status(built)
    assert after["failures"] == before["failures"] == 0
    assert after["generation"] == before["generation"]


def test_missing_folder_beside_a_real_one_is_not_kept_as_a_failure(
    models: Models, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "photos")
    index_dir = tmp_path / "index"
    args = cli_index_args(models, folder, index_dir)
    result = cli(*args[:2], str(tmp_path / "Photoss"), *args[2:], "--json")
    assert result.exit_code == 0, result.output
    assert "Photoss" in result.stderr  # a warning names it
    assert json.loads(result.stdout)["indexed"] == 2
    assert status(index_dir)["failures"] == 0


def test_stale_failures_are_cleared_by_index_runs_and_doctor(
    models: Models, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "photos")
    index_dir = tmp_path / "index"
    (folder / "broken.jpg").write_bytes(b"not a photo")
    (folder / "fixed.jpg").write_bytes(b"not a photo either")
    result = cli(*cli_index_args(models, folder, index_dir))
    assert result.exit_code == 0, result.output
    assert {Path(f["path"]).name for f in status(index_dir)["failed"]} == {
        "broken.jpg",
        "fixed.jpg",
    }

    # A later run that indexes the file fine clears its failure; so does a deleted file.
    shutil.copy(DATA / "living_room.jpg", folder / "fixed.jpg")
    (folder / "broken.jpg").unlink()
    result = cli(*cli_index_args(models, folder, index_dir), "--no-prune")
    assert result.exit_code == 0, result.output
    assert status(index_dir)["failures"] == 0

    # doctor clears failures of paths that no longer exist.
    (folder / "gone.jpg").write_bytes(b"garbage")
    assert cli(*cli_index_args(models, folder, index_dir)).exit_code == 0
    assert status(index_dir)["failures"] == 1
    (folder / "gone.jpg").unlink()
    result = cli("doctor", "--index", index_dir)
    assert result.exit_code == 0, result.output
    assert status(index_dir)["failures"] == 0


# -- item 4: arguments are checked before any model loads ------------------------------------
# A CLIP model that cannot load: an argument error must win over the model error.
def _no_model(tmp_path: Path) -> list[str]:
    return ["--clip-model", str(tmp_path / "no-such-clip")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["a cat", "--top-k", "0"], "top-k"),
        (["   "], "empty"),
        (["--image", "{tmp}/missing.jpg"], "no such file"),
        (["--image", "{tmp}/notes.jpg"], "not a readable image"),
        (["a cat", "--refine", "--refine-top", "-1"], "refine-top"),
    ],
)
def test_search_arguments_are_checked_before_the_model_loads(
    built: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "notes.jpg").write_text("a text file with a photo's name")
    args = [a.format(tmp=tmp_path) for a in args]
    result = cli("search", *args, "--index", built, *_no_model(tmp_path))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "no-such-clip" not in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("photo", "extra", "expected"),
    [
        ("{tmp}/missing.jpg", [], "no such file"),
        ("{data}/beach_ball.jpg", ["--out", "{tmp}/no-such-folder/out.png"], "Cannot write"),
        ("{data}/beach_ball.jpg", ["--heatmap", "{tmp}/no-such-folder/heat.png"], "Cannot write"),
        ("{data}/beach_ball.jpg", ["--out", "{tmp}/out.notanimage"], "Cannot write"),
    ],
)
def test_localize_arguments_are_checked_before_the_model_loads(
    tmp_path: Path, photo: str, extra: list[str], expected: str
) -> None:
    fill = {"tmp": tmp_path, "data": DATA}
    args = [photo.format(**fill), "a ball", *(a.format(**fill) for a in extra)]
    result = cli("localize", *args, *_no_model(tmp_path))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "no-such-clip" not in result.stderr and "Traceback" not in result.output
    assert not list(tmp_path.glob("out.*"))


# -- item 5: models are resolved first, the index folder comes last -------------------------
def test_model_failure_leaves_no_index_folder(models: Models, tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos")
    index_dir = tmp_path / "index"
    args = cli_index_args(models, folder, index_dir)
    args[args.index("--clip-model") + 1] = str(tmp_path / "no-such-clip")
    result = cli(*args)
    assert result.exit_code == 3, result.output
    assert "no-such-clip" in result.stderr and '"No internet?"' in result.stderr
    assert not index_dir.exists()


def test_detector_is_resolved_before_clip_is_converted(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("OBJSEARCH_CACHE", str(cache))  # an empty conversion cache
    folder = photos(tmp_path / "photos")
    index_dir = tmp_path / "index"
    args = cli_index_args(models, folder, index_dir)
    args[args.index("--detector") + 1] = str(tmp_path / "no-such-detector.pt")
    result = cli(*args, "--backend", "openvino")
    assert result.exit_code == 3, result.output
    assert "no-such-detector.pt" in result.stderr and '"No internet?"' in result.stderr
    assert not cache.exists() or not any(cache.rglob("*.xml")), "CLIP was converted first"
    assert not index_dir.exists()


def test_unreachable_detector_name_fails_before_clip_is_converted(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("OBJSEARCH_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)  # no yolo11s.pt here, and the machine has no internet
    folder = photos(tmp_path / "photos")
    args = cli_index_args(models, folder, tmp_path / "index")
    args[args.index("--detector") + 1] = "yolo11s.pt"
    result = cli(*args, "--backend", "openvino")
    assert result.exit_code == 3, result.output
    assert "yolo11s.pt" in result.stderr
    assert not cache.exists() or not any(cache.rglob("*.xml"))
    assert not (tmp_path / "index").exists()


# -- item 6: a missing query file, and the README's example file -----------------------------
def test_missing_query_file_says_no_such_file(built: Path, tmp_path: Path) -> None:
    result = cli("search", "--image", tmp_path / "query.jpg", "--index", built)
    assert result.exit_code == 2
    assert "no such file" in result.stderr and "vanished" not in result.stderr
    with Searcher(built) as searcher, pytest.raises(ObjsearchError, match="no such file"):
        searcher.search(image=tmp_path / "query.jpg")


def test_readme_query_images_exist() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"--image\s+(\S+)", readme) + re.findall(r'image="([^"]+)"', readme)
    assert named, "the README shows search by example"
    for name in named:
        assert (REPO_ROOT / name).is_file(), f"README names {name}, which does not exist"


# -- item 7: piped output ----------------------------------------------------------------------
def test_piped_search_output_is_tab_separated_and_unwrapped(models: Models, tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / ("and-another-long-one-" * 3)
    folder = photos(deep)
    index_dir = tmp_path / "index"
    assert cli(*cli_index_args(models, folder, index_dir)).exit_code == 0
    result = cli("search", "a ball", "--index", index_dir)  # the runner's stdout is no terminal
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [line.split("\t") for line in lines if str(folder) in line]
    assert len(rows) == 2, result.stdout
    assert all(len(row) == len(rows[0]) >= 5 for row in rows)
    assert {p for row in rows for p in row if p.startswith(str(folder))} == {
        str(p) for p in folder.iterdir()
    }
    assert all("\t" in line for line in lines if line.strip()), "no table borders or titles"


# -- items 8 and 14: an index with no committed photo yet --------------------------------------
def test_search_on_an_index_without_photos_is_empty_not_an_error(
    models: Models, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    index_dir = tmp_path / "index"
    result = cli(*cli_index_args(models, empty, index_dir))
    assert result.exit_code == 0, result.output
    result = cli("search", "a cat", "--index", index_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert "no photos yet" in result.stderr
    result = cli("search", "a cat", "--index", index_dir)
    assert result.exit_code == 0 and "no photos yet" in result.stderr
    with Searcher(index_dir) as searcher:
        assert searcher.search(text="a cat") == []


def test_first_batch_commits_after_a_few_photos(models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        Image.new("RGB", (64 + i, 48), (20 * i, 100, 200 - 10 * i)).save(folder / f"p{i:02d}.png")
    index_dir = tmp_path / "index"
    seen: list[tuple[int, int, int]] = []  # (done, committed photos, search hits)

    def progress(done: int, total: int) -> None:
        if done == 0 or seen:
            return
        con = sqlite3.connect(f"file:{index_dir / 'objsearch.db'}?mode=ro", uri=True)
        committed = con.execute("SELECT count(*) FROM photos").fetchone()[0]
        con.close()
        with Searcher(index_dir, embedder=models.embedder) as searcher:
            hits = len(searcher.search(text="a cat", top_k=20))
        seen.append((done, committed, hits))

    indexer = api_indexer(models, index_dir, batch_size=16)
    stats = indexer.index([folder], progress=progress)
    assert stats.indexed == 12
    done, committed, hits = seen[0]
    assert 0 < done <= 4, "the first commit waits for the whole first batch"
    assert committed == done and hits == done  # committed work is searchable at once


# -- item 10: refined_box null means one thing -------------------------------------------------
def test_refinement_says_whether_it_ran(built: Path) -> None:
    result = cli("search", "a ball", "--index", built, "--json", "--refine", "--refine-top", "1")
    assert result.exit_code == 0, result.output
    first, *rest = json.loads(result.stdout)
    assert rest, "two photos are indexed"
    assert first["refinement"] in ("refined", "none found")
    assert (first["refined_box"] is None) == (first["refinement"] == "none found")
    assert all(r["refinement"] == "not requested" and r["refined_box"] is None for r in rest)
    result = cli("search", "a ball", "--index", built, "--json")
    assert {r["refinement"] for r in json.loads(result.stdout)} == {"not requested"}
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert '"none found"' in readme and '"not requested"' in readme
