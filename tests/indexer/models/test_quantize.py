"""--precision int8: the image tower quantized once (NNCF), cached, close to fp32, refused
where it cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer.errors import ModelLoadError, ObjsearchError
from indexer.models import quantize
from indexer.models.clip import ClipEmbedder
from indexer.settings import cache_dir, openvino_available
from indexer.store import Store
from retrieval import Searcher
from retrieval.cli import app
from tests.fixtures import Models, cli_index_args

pytestmark = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")
nncf = pytest.importorskip("nncf")


def _photos(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix in (".jpg", ".png"))[:3]


def _int8_models() -> set[Path]:
    return set((cache_dir() / "openvino").glob("clip-image-encoder-*-int8-*/model.xml"))


def test_windows_cover_the_photo_and_its_parts() -> None:
    windows = quantize.calibration_windows(Image.new("RGB", (90, 60)))
    assert len(windows) == 15
    assert windows[0].size == (90, 60)
    assert {w.size for w in windows[2:6]} == {(45, 30)}
    assert {w.size for w in windows[6:]} == {(30, 20)}


def test_int8_quantizes_once_and_stays_close_to_fp32(
    tiny_clip_dir: Path, sample_photos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calibration = _photos(sample_photos_dir)
    before = _int8_models()
    int8 = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="int8", calibration=calibration)
    fp32 = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="fp32", backend="openvino")
    assert (int8.precision, int8.backend) == ("int8", "openvino")
    created = _int8_models() - before
    assert len(created) == 1
    graph = created.pop().read_text()
    assert "FakeQuantize" in graph or "FakeConvert" in graph  # int8 ops, not a copy

    images = [Image.open(p).convert("RGB") for p in calibration]
    images += [im.crop((0, 0, im.width // 2, im.height // 2)) for im in images]
    got, ref = int8.embed_images(images), fp32.embed_images(images)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * ref).sum(axis=1).min() > 0.95
    # Text queries run the unquantized text tower: the same vectors as fp32.
    assert float(int8.embed_texts(["a cat"])[0] @ fp32.embed_texts(["a cat"])[0]) > 0.999

    def refuse(*args, **kwargs):
        raise AssertionError("quantized again instead of using the cached model")

    monkeypatch.setattr(nncf, "quantize", refuse)
    cached = _int8_models()
    again = ClipEmbedder(str(tiny_clip_dir), "cpu", precision="int8", calibration=calibration)
    np.testing.assert_allclose(again.embed_images(images), got, atol=1e-5)
    assert _int8_models() == cached

    # Another calibration set is another model, in its own cache entry.
    monkeypatch.undo()
    ClipEmbedder(str(tiny_clip_dir), "cpu", precision="int8", calibration=calibration[:1])
    assert len(_int8_models() - before) == 2


def test_int8_is_refused_where_it_cannot_run(tiny_clip_dir: Path) -> None:
    with pytest.raises(ObjsearchError, match="needs the OpenVINO backend"):
        ClipEmbedder(str(tiny_clip_dir), "cpu", precision="int8", backend="torch")
    with pytest.raises(ObjsearchError, match="--device cpu"):
        ClipEmbedder(str(tiny_clip_dir), "cuda", precision="int8")


def test_int8_without_calibration_photos_says_so(
    tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize, "DATA_DIR", tmp_path / "absent")
    monkeypatch.delenv("OBJSEARCH_CALIBRATION", raising=False)
    assert quantize.default_calibration_photos() == []
    with pytest.raises(ModelLoadError, match="OBJSEARCH_CALIBRATION"):
        ClipEmbedder(str(tiny_clip_dir), "cpu", precision="int8")


def test_calibration_folder_from_the_environment(
    tmp_path: Path, sample_photos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBJSEARCH_CALIBRATION", str(sample_photos_dir))
    photos = quantize.default_calibration_photos()
    assert photos and {Path(p).parent for p in photos} == {sample_photos_dir}
    monkeypatch.setenv("OBJSEARCH_CALIBRATION", str(tmp_path / "absent"))
    assert quantize.default_calibration_photos() == []


def test_cli_indexes_and_searches_in_int8(
    models: Models, sample_photos_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--precision int8`` on the CLI (calibrated on the checkout's photos), then a search
    with ``OBJSEARCH_PRECISION=int8``; the index records the precision."""
    index_dir = tmp_path / "index"
    args = cli_index_args(models, sample_photos_dir, index_dir)
    result = CliRunner().invoke(app, [*args, "--precision", "int8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["indexed"] > 0
    with Store(index_dir) as store:
        assert store.get_meta("precision") == "int8"
        key = store.get_meta("int8_calibration")
    assert key == quantize.calibration_key(quantize.default_calibration_photos())
    monkeypatch.setenv("OBJSEARCH_PRECISION", "int8")
    photo = sorted(sample_photos_dir.glob("*.jpg"))[0]
    with Searcher(index_dir, clip_model=str(models.clip_dir), device="cpu") as searcher:
        assert searcher.embedder.precision == "int8"
        hits = searcher.search(image=photo, top_k=3)
    assert hits and hits[0].score > 0.9  # the photo finds itself through the int8 tower
    # An installation without the calibration photos (a wheel) finds the same int8 tower
    # through the key the index recorded.
    monkeypatch.setattr(quantize, "DATA_DIR", tmp_path / "absent")
    monkeypatch.delenv("OBJSEARCH_CALIBRATION", raising=False)
    with Searcher(index_dir, clip_model=str(models.clip_dir), device="cpu") as searcher:
        assert searcher.embedder.precision == "int8"
        again = searcher.search(image=photo, top_k=3)
    assert [h.region_id for h in again] == [h.region_id for h in hits]
    assert again[0].score == pytest.approx(hits[0].score, abs=1e-5)
    refused = CliRunner().invoke(app, [*args, "--precision", "int8", "--backend", "torch"])
    assert refused.exit_code != 0
    assert "needs the OpenVINO backend" in refused.output
    assert "Traceback" not in refused.output


def test_default_calibration_is_the_checkouts_sample_photos() -> None:
    photos = quantize.default_calibration_photos()
    assert photos and all(Path(p).parent.name == "data" for p in photos)
