"""The server follows a running index job and answers concurrent requests consistently."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tests.fixtures import cli_index_args
from tests.fixtures.server import Server, build_index, objsearch_command, run_server, server_env

API = "/api/v1"
NEW_PHOTOS = 24


def test_concurrent_searches_agree(server: Server) -> None:
    queries = ["a cat", "a red square", "a dog", "a flowerpot"] * 6
    with server.client() as client:
        expected = {q: client.get(f"{API}/search", params={"q": q}).json() for q in set(queries)}

        def ask(query: str) -> tuple[str, int, list]:
            response = client.get(f"{API}/search", params={"q": query})
            return query, response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(ask, queries))
    for query, status, body in answers:
        assert status == 200
        assert [h["region_id"] for h in body] == [h["region_id"] for h in expected[query]]


def _write_photos(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
        path = folder / f"new_{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_search_follows_an_index_run(tmp_path: Path, models, served_photos: Path) -> None:
    """New batches committed by a running ``objsearch index`` are found without a restart."""
    index_dir = tmp_path / "index"
    build_index(models, served_photos, index_dir)
    new_dir = tmp_path / "more"
    new_paths = {str(p) for p in _write_photos(new_dir, NEW_PHOTOS)}
    with run_server(index_dir, models.clip_dir) as server, server.client() as client:
        before = client.get(f"{API}/status").json()["photos"]
        job = subprocess.Popen(
            objsearch_command(
                *cli_index_args(models, new_dir, index_dir), "--batch-size", "1", "--no-prune"
            ),
            env=server_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        seen_midway = None  # (photos indexed, new photos found by search) while the job ran
        deadline = time.monotonic() + 300
        try:
            while job.poll() is None and time.monotonic() < deadline:
                photos = client.get(f"{API}/status").json()["photos"]
                hits = client.get(f"{API}/search", params={"q": "noise", "k": 200, "kind": "image"})
                assert hits.status_code == 200
                found = {h["image"] for h in hits.json()} & new_paths
                if job.poll() is None and 0 < len(found) < NEW_PHOTOS:
                    seen_midway = (photos, len(found))
                time.sleep(0.05)
            assert job.wait(timeout=60) == 0, job.stderr.read().decode()[-2000:]
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        assert seen_midway is not None, "no search saw part of the new photos while indexing"
        assert seen_midway[0] > before
        final = client.get(f"{API}/search", params={"q": "noise", "k": 200, "kind": "image"})
        assert new_paths <= {h["image"] for h in final.json()}
        assert client.get(f"{API}/status").json()["photos"] == before + NEW_PHOTOS
