"""Run a real ``objsearch serve`` process on a free loopback port (for the server tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from retrieval.cli import app
from tests.conftest import REPO_ROOT, Models, cli_index_args

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def objsearch_command(*args: str) -> list[str]:
    """Run the CLI in a fresh interpreter, whatever module layout the package has."""
    return [sys.executable, "-c", "from retrieval.cli import main; main()", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}


@dataclass
class Server:
    """A running server: its base URL, process and index folder."""

    url: str
    proc: subprocess.Popen
    index_dir: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def run_server(index_dir: Path, clip_dir: Path, *extra: str) -> Iterator[Server]:
    """Start ``objsearch serve``, wait until it answers, stop it with Ctrl-C (SIGINT)."""
    port = free_port()
    proc = subprocess.Popen(
        objsearch_command(
            "serve", "--index", str(index_dir), "--port", str(port), "--device", "cpu", *extra
        ),
        cwd=REPO_ROOT,
        env={**child_env(), "OBJSEARCH_CLIP_MODEL": str(clip_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"objsearch serve exited with {proc.returncode}: {out}{err[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                # 200, or 401 when a token is required: either way it is serving.
                if httpx.get(f"{url}/", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"objsearch serve did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield Server(url, proc, index_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def build_index(models: Models, photos: Path, index_dir: Path) -> None:
    result = CliRunner().invoke(app, cli_index_args(models, photos, index_dir))
    assert result.exit_code == 0, result.output
