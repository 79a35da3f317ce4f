"""Packaging and the README's quickstart: what a fresh clone shows a new user."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import REPO_ROOT, Models, child_env


def readme() -> str:
    return (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_license_is_an_spdx_string() -> None:
    """setuptools stops building TOML-table licences after 2027-02-18."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "AGPL-3.0-or-later"
    requires = " ".join(project["build-system"]["requires"])
    version = re.search(r"setuptools>=(\d+)", requires)
    assert version and int(version.group(1)) >= 77, "SPDX licence strings need setuptools 77"


def test_readme_documents_the_cpu_only_torch_wheels() -> None:
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme()


@pytest.mark.parametrize(
    "path",
    [
        "out.png",
        "heat.png",
        "my-index/objsearch.db",
        "photos.jsonl",
        "data/desk.png.xmp",
        "I/objsearch.db",
    ],
)
def test_readme_example_outputs_are_git_ignored(path: str) -> None:
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=REPO_ROOT, check=False
    )
    assert done.returncode == 0, f"{path} is not ignored"


def python_example() -> str:
    section = readme().split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has a Python API example"
    return match.group(1)


def run_from_clone(models: Models, work: Path, args: list[str], **env: str) -> str:
    """``python ARGS`` in ``work`` with the tiny models; its stdout (a failure says why)."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=work,
        env=child_env(
            **{
                "OBJSEARCH_CLIP_MODEL": str(models.clip_dir),
                "OBJSEARCH_DETECTOR": str(models.yolo_path),
                "OBJSEARCH_DEVICE": "cpu",
                **env,
            }
        ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_readme_python_example_runs_as_written(models: Models, tmp_path: Path) -> None:
    """The example, verbatim, with ``~/Photos`` in a fresh home and the tiny models."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "Photos").mkdir(parents=True)
    work.mkdir()
    samples = [p for p in (REPO_ROOT / "data").iterdir() if p.suffix in (".jpg", ".png", ".webp")]
    for src in samples:
        shutil.copy(src, home / "Photos" / src.name)
    os.symlink(REPO_ROOT / "data", work / "data")  # run from the clone, as the README says
    stdout = run_from_clone(models, work, ["-c", python_example()], HOME=str(home))
    lines = stdout.splitlines()
    assert lines and lines[0].startswith(f"{len(samples)} "), stdout  # photos indexed
    assert any(str(home / "Photos") in line for line in lines[1:])


def xmp_example() -> list[str]:
    section = readme().split("### XMP sidecars", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the README has an XMP example"
    return [line.split("#")[0].strip() for line in match.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_xmp_example_runs_as_written(
    models: Models, shared_assets: Path, tmp_path: Path
) -> None:
    """The README's XMP commands on a copy of the sample photos, with the real YOLO11n."""
    from tests.fixtures.sidecars import exiftool

    shutil.copytree(REPO_ROOT / "data", tmp_path / "data")
    env = child_env(
        **{
            "OBJSEARCH_CLIP_MODEL": str(models.clip_dir),
            "OBJSEARCH_DETECTOR": str(shared_assets / "detector" / "yolo11n-coco.pt"),
            "OBJSEARCH_DEVICE": "cpu",
            "OBJSEARCH_BACKEND": "torch",
        }
    )
    outputs = []
    for line in xmp_example():
        words = line.split()
        if words[0] == "objsearch":
            words = [sys.executable, "-c", "from retrieval.cli import main; main()", *words[1:]]
        elif words[0] == "exiftool":
            words[0] = exiftool()
        done = subprocess.run(
            words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, (line, done.stderr[-3000:])
        outputs.append(done.stdout)
        if "--xmp" in words and "--remove" not in words:
            assert (tmp_path / "data" / "beach_ball.jpg.xmp").is_file(), done.stdout
    assert "sidecars written" in outputs[1]
    assert "Subject                         : sports ball" in outputs[2]
    assert "Image Region Name               : sports ball" in outputs[2]
    assert not list((tmp_path / "data").glob("*.xmp"))  # --remove took them out again


def ocr_commands() -> list[str]:
    section = readme().split("## Text in photos", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the README's text-in-photos section starts with its commands"
    return [line for line in match.group(1).splitlines() if line.startswith("objsearch ")]


def test_readme_ocr_commands_find_the_sample_sign(models: Models, tmp_path: Path) -> None:
    """``index data/ --index I --ocr`` then ``search --ocr WORD``, as written, from a clone."""
    import shlex

    work = tmp_path / "clone"
    work.mkdir()
    os.symlink(REPO_ROOT / "data", work / "data")
    outputs = [
        run_from_clone(models, work, ["-m", "retrieval.cli", *shlex.split(command)[1:]])
        for command in ocr_commands()
    ]
    assert "photos read" in " ".join(outputs[0].split())
    first = [line for line in outputs[1].splitlines() if line.startswith("1\t")]
    assert first and "shop_front.jpg" in first[0] and "BAKERY" in first[0], outputs[1]
