"""``objsearch watch``: clear usage errors, and a real watcher process stopped by a signal."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.store import Store
from retrieval.cli import app
from tests.conftest import REPO_ROOT
from tests.fixtures import Models, write_photo
from tests.fixtures import wait_for as until
from tests.fixtures.server import API, build_index, objsearch_command, run_server, server_env

DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, models: Models) -> tuple[Path, Path]:
    """A folder with one photo and its index."""
    root = tmp_path_factory.mktemp("watch-cli")
    write_photo(root / "photos" / "first.jpg", seed=1)
    build_index(models, root / "photos", root / "index")
    return root / "photos", root / "index"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing folder", "no such folder"),
        ("file as folder", "is a file, not a folder"),
        ("not an index", "No objsearch index at"),
        ("missing index", "No objsearch index at"),
    ],
)
def test_unusable_arguments_exit_2_with_a_message(
    watched: tuple[Path, Path], tmp_path: Path, case: str, message: str
) -> None:
    folder, index_dir = watched
    args = {
        "missing folder": [str(tmp_path / "nowhere"), "--index", str(index_dir)],
        "file as folder": [str(folder / "first.jpg"), "--index", str(index_dir)],
        "not an index": [str(folder), "--index", str(folder)],
        "missing index": [str(folder), "--index", str(tmp_path / "no-index")],
    }[case]
    result = CliRunner().invoke(app, ["watch", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "no-index").exists()  # nothing created


def read_batches(path: Path, count: int, proc: subprocess.Popen) -> list[dict]:
    """Wait until the watcher has printed ``count`` JSON lines (one per batch)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"expected {count} batch lines, got: {lines} (exit {proc.poll()})")
        time.sleep(0.1)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_watcher_process_prints_each_batch_and_stops_cleanly(
    watched: tuple[Path, Path], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    folder, index_dir = watched
    out_path, err_path = tmp_path / "out.jsonl", tmp_path / "err.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            objsearch_command(
                "watch", str(folder), "--index", str(index_dir), "--device", "cpu", "--json"
            ),
            cwd=REPO_ROOT,
            env=server_env(),
            stdout=out,
            stderr=err,
        )
        try:
            catch_up = read_batches(out_path, 1, proc)[0]
            assert catch_up["catch_up"] and catch_up["error"] is None
            name = f"new-{stop_signal.name}.jpg"
            write_photo(tmp_path / name, seed=stop_signal.value)
            shutil.copy(tmp_path / name, folder / name)
            batch = read_batches(out_path, 2, proc)[1]
            assert not batch["catch_up"] and batch["added"] == 1 and batch["failed"] == 0
            proc.send_signal(stop_signal)
            assert proc.wait(timeout=DEADLINE_S) == 0, err_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Stopped" in err_path.read_text()
    with Store(index_dir) as store:
        assert str(folder / name) in store.photo_states()
        store.lock()  # the watcher let go of the writer lock


def readme_watch_commands() -> list[list[str]]:
    """The commands of the README's "Watching folders" section, comments cut."""
    section = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("### Watching folders")[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the README's watching section starts with its commands"
    return [shlex.split(line.split("#")[0]) for line in match.group(1).splitlines()]


def wait_for_text(path: Path, text: str, proc: subprocess.Popen) -> None:
    until(lambda: text in path.read_text(), f"{text!r} printed", lambda: path.read_text())
    assert proc.poll() is None


@pytest.mark.slow
def test_readme_watch_commands_run_as_written(models: Models, tmp_path: Path) -> None:
    """index, watch and serve --watch as the README writes them, in a copy of the clone."""
    index, watch, serve = readme_watch_commands()
    assert [index[1], watch[1], serve[1]] == ["index", "watch", "serve"]
    shutil.copytree(REPO_ROOT / "data", tmp_path / "data")
    env = {**server_env(), "OBJSEARCH_CLIP_MODEL": str(models.clip_dir)}
    env |= {"OBJSEARCH_DETECTOR": str(models.yolo_path), "OBJSEARCH_DEVICE": "cpu"}
    done = subprocess.run(
        objsearch_command(*index[1:]), cwd=tmp_path, env=env, capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

    out_path = tmp_path / "watch.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            objsearch_command(*watch[1:]), cwd=tmp_path, env=env, stdout=out, stderr=out
        )
        try:
            wait_for_text(out_path, "catch-up: 0 added", proc)
            write_photo(tmp_path / "data" / "dropped.jpg", seed=3)
            wait_for_text(out_path, "batch: 1 added", proc)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=DEADLINE_S) == 0, out_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    index_dir = Path(serve[serve.index("--index") + 1])
    with run_server(index_dir, models.clip_dir, *serve[4:], cwd=tmp_path) as server:
        status = lambda: server.client().get(f"{API}/status").json()  # noqa: E731
        until(lambda: status()["watch"]["last_batch_at"], "catch-up", lambda: server.output())
        assert status()["watch"]["folders"] == [str(tmp_path / "data")]
        os.remove(tmp_path / "data" / "dropped.jpg")
        until(lambda: status()["photos"] == 5, "the delete", lambda: server.output())
