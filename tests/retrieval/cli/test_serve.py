"""The ``serve`` command: options reach the server, and bad ones stop before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrieval.cli import app
from tests.fixtures.server import API, run_server


def _serve(*args: str) -> object:
    return CliRunner().invoke(app, ["serve", *args])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tls-cert", "{tmp}/cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "{tmp}/no.pem", "--tls-key", "{tmp}/no.key"], "no such file"),
        (["--host", "0.0.0.0"], "--token"),
        (["--device", "tpu"], "Unknown device 'tpu'"),
    ],
)
def test_bad_options_are_refused_before_serving(
    tiny_index: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    result = _serve("--index", str(tiny_index), *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output


def test_a_missing_index_is_a_store_error(tmp_path: Path) -> None:
    result = _serve("--index", str(tmp_path / "none"))
    assert result.exit_code == 4 and "No objsearch index" in result.stderr


def test_the_upload_limit_option_reaches_the_server(tiny_index: Path, tiny_clip_dir: Path) -> None:
    with run_server(tiny_index, tiny_clip_dir, "--max-upload-mb", "0.01") as server:
        response = server.client().post(
            f"{API}/search", files={"image": ("big.jpg", b"\xff" * 200_000, "image/jpeg")}
        )
    assert response.status_code == 413, response.text
