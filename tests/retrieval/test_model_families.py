"""SigLIP and SigLIP 2 indexes end to end: index, search by text and image, refuse mixing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.errors import StoreError
from indexer.store import Store
from retrieval.cli import app
from retrieval.search import Searcher
from tests.fixtures import Models, cli_index_args
from tests.fixtures.server import API, cli_json, run_server

# Each index is built through the CLI, converting its model for OpenVINO.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["tiny_siglip_dir", "tiny_siglip2_dir"])
def family_index(request, tmp_path_factory, tiny_yolo_path, sample_photos_dir) -> tuple[Path, Path]:
    """An index built through the CLI with a tiny SigLIP (or SigLIP 2) and the tiny YOLO."""
    model_dir: Path = request.getfixturevalue(request.param)
    index_dir = tmp_path_factory.mktemp(request.param) / "index"
    models = Models(model_dir, tiny_yolo_path, None, None)
    result = CliRunner().invoke(
        app, [*cli_index_args(models, sample_photos_dir, index_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["indexed"] == 7 and stats["objects"] > 0 and stats["failures"] == 0
    return index_dir, model_dir


def test_index_records_family_and_size(family_index) -> None:
    index_dir, model_dir = family_index
    with Store(index_dir) as store:
        meta = store.meta()
    family = "siglip2" if "siglip2" in model_dir.name else "siglip"
    assert meta["model_family"] == family and meta["embed_dim"] == "32"
    status = CliRunner().invoke(app, ["status", "--index", str(index_dir), "--json"])
    assert json.loads(status.stdout)["model_family"] == family


def test_text_and_image_search(family_index, sample_photos_dir: Path) -> None:
    index_dir, _ = family_index
    result = CliRunner().invoke(app, ["search", "a cat", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 7 and {h["kind"] for h in hits} <= {"object", "image"}
    query = sorted(sample_photos_dir.glob("photo_0*.jpg"))[0]
    with Searcher(index_dir) as searcher:  # the index's own model, found from its meta
        assert searcher.embedder.family.name in ("siglip", "siglip2")
        similar = searcher.search(image=query, top_k=3, kind="image")
    assert similar[0].image == str(query) and similar[0].score > 0.999


def test_searching_with_another_family_is_refused(family_index, tiny_clip_dir: Path) -> None:
    index_dir, _ = family_index
    with pytest.raises(StoreError) as info:
        Searcher(index_dir, clip_model=str(tiny_clip_dir))
    message = str(info.value)
    assert "SigLIP" in message and "CLIP model" in message and "not comparable" in message
    result = CliRunner().invoke(
        app, ["search", "a cat", "--index", str(index_dir), "--clip-model", str(tiny_clip_dir)]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_indexing_with_another_family_is_refused(
    family_index, tiny_clip_dir: Path, tiny_yolo_path: Path, sample_photos_dir: Path
) -> None:
    index_dir, _ = family_index
    with Store(index_dir) as store:
        before = store.meta()["generation"]
    args = ["index", str(sample_photos_dir), "--index", str(index_dir), "--device", "cpu"]
    args += ["--detector", str(tiny_yolo_path)]  # both models are located before either loads
    result = CliRunner().invoke(app, [*args, "--clip-model", str(tiny_clip_dir)])
    assert result.exit_code != 0 and "not comparable" in " ".join(result.output.split())
    with Store(index_dir) as store:
        assert store.meta()["generation"] == before


def test_the_server_searches_a_family_index(family_index) -> None:
    index_dir, model_dir = family_index
    expected = cli_json("search", "a cat", "--index", str(index_dir))
    with run_server(index_dir, model_dir) as server, server.client() as client:
        response = client.get(f"{API}/search", params={"q": "a cat"})
    assert response.status_code == 200, response.text
    hits = response.json()
    assert hits and [h["region_id"] for h in hits] == [h["region_id"] for h in expected]
