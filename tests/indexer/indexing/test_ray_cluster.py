"""Reaching Ray: a clear message without it; a local cluster started and stopped by the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.errors import ObjsearchError
from indexer.indexing.ray_cluster import INSTALL_HINT, import_ray
from retrieval.cli import app
from tests.fixtures import REPO_ROOT, Models, child_env
from tests.fixtures.ray_helpers import require_ray, write_photos


def test_without_ray_the_index_command_says_how_to_install_it(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photos(tmp_path / "photos", 2)
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now fails as if not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ObjsearchError, match=r"pip install \"objsearch\[ray\]\""):
        import_ray()
    result = CliRunner().invoke(
        app,
        ["index", str(tmp_path / "photos"), "--index", str(tmp_path / "index")]
        + [
            "--clip-model",
            str(models.clip_dir),
            "--detector",
            str(models.yolo_path),
            "--ray",
            "auto",
        ],
    )
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert INSTALL_HINT in said and "Traceback" not in said
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())


@pytest.mark.slow
def test_the_cli_starts_a_local_cluster_and_stops_it(models: Models, tmp_path: Path) -> None:
    require_ray()
    write_photos(tmp_path / "photos", 6)
    mark = f"objsearch-test-{uuid.uuid4().hex}"  # inherited by every process Ray starts
    proc = subprocess.Popen(
        [sys.executable, "-c", "from retrieval.cli import main; main()"]
        + ["index", str(tmp_path / "photos"), "--index", str(tmp_path / "index")]
        + ["--clip-model", str(models.clip_dir), "--detector", str(models.yolo_path)]
        + ["--device", "cpu", "--ray", "local"],
        cwd=REPO_ROOT,
        env=child_env(
            **{
                "OBJSEARCH_RAY_ADDRESS": "",
                "OBJSEARCH_TEST_MARK": mark,
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leftovers = marked_processes(mark)
    for pid in leftovers:  # ours: started by the command above
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "6 photos indexed" in " ".join(out.split()), out
    assert leftovers == [], "the local cluster left processes behind"


def marked_processes(mark: str, wait: float = 10.0) -> list[int]:
    """PIDs whose environment holds ``mark``, after giving them ``wait`` s to exit."""
    needle = f"OBJSEARCH_TEST_MARK={mark}".encode()
    deadline = time.monotonic() + wait
    while True:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as fh:
                        if needle in fh.read().split(b"\0"):
                            found.append(int(entry))
                except OSError:
                    continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
