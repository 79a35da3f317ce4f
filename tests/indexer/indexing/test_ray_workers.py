"""The code Ray ships to workers, run in this process: it must match the local pipeline exactly.

``decode_row`` and ``RegionActor`` are plain Python; calling them directly (no cluster) checks
that a photo crossing the object store as raw pixels is bit-exact, and that the actor's
detect + embed is the local pipeline's own step. The last tests run the same code on the
session's local Ray cluster, to see an error cross the process boundary as its own class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.errors import CarriedError, ModelLoadError
from indexer.indexing.ray_workers import (
    ModelProbe,
    ModelSpec,
    RegionActor,
    decode_row,
    outcomes,
    photo_from_row,
    probe_models,
)
from indexer.indexing.regions import RegionEmbedder
from indexer.media.decode import DecodeError, read_photo
from indexer.models.identity import model_mismatch, model_record
from tests.fixtures import FAST, Models
from tests.fixtures.ray_helpers import write_photos


def as_batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Rows as the NumPy batch Ray Data hands a ``map_batches`` callable."""
    batch: dict[str, np.ndarray] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if isinstance(values[0], (str, bytes)):
            column = np.empty(len(values), dtype=object)
            column[:] = values
        else:
            column = np.asarray(values)
        batch[key] = column
    return batch


def spec_for(models: Models, **changes: Any) -> ModelSpec:
    fields = {
        "clip_model": str(models.clip_dir),
        "detector": str(models.yolo_path),
        "device": "cpu",
        "precision": "fp32",
        "backend": "torch",
        "options": FAST,
        "embed_batch_size": 64,
        "threads": 2,
    }
    return ModelSpec(**{**fields, **changes})


def test_decoded_pixels_cross_the_object_store_bit_exact(
    sample_photos_dir: Path,
) -> None:
    for path in sorted(p for p in sample_photos_dir.rglob("*") if p.is_file()):
        row = decode_row({"path": str(path)}, max_megapixels=180.0, decode_side=1280)
        got, want = photo_from_row(row), read_photo(str(path))
        assert np.array_equal(np.asarray(got.image), np.asarray(want.image)), path
        assert (got.width, got.height, got.content_hash, got.size, got.mtime_ns) == (
            want.width,
            want.height,
            want.content_hash,
            want.size,
            want.mtime_ns,
        )
        assert got.metadata == want.metadata and want.metadata is not None


def test_a_file_that_fails_to_decode_comes_back_with_the_local_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    row = decode_row({"path": str(bad)}, max_megapixels=180.0, decode_side=1280)
    with pytest.raises(DecodeError) as local:
        read_photo(str(bad))
    assert row["error"] == str(local.value) and row["pixels"] == b""


def test_the_actor_computes_what_the_local_region_step_computes(
    models: Models, tmp_path: Path
) -> None:
    paths = write_photos(tmp_path, 5)
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    rows = [
        decode_row({"path": str(p)}, max_megapixels=180.0, decode_side=1280)
        for p in [*paths, tmp_path / "bad.jpg"]
    ]
    actor = RegionActor(spec_for(models))
    got = outcomes(actor(as_batch(rows)))

    want = RegionEmbedder(models.embedder, models.detector, FAST).embed(
        [read_photo(str(p)) for p in paths]
    )
    assert [o.path for o in got] == [str(p) for p in paths] + [str(tmp_path / "bad.jpg")]
    assert got[-1].record is None and got[-1].failure is not None
    assert got[-1].failure.stage == "decode"
    for outcome, photo in zip(got, want, strict=False):
        assert outcome.failure is None and outcome.record is not None
        record = outcome.record
        assert (record.path, record.content_hash, record.caption) == (
            photo.path,
            photo.content_hash,
            photo.caption,
        )
        assert [(r.kind, r.box, r.label) for r in record.regions] == [
            (r.kind, r.box, r.label) for r in photo.regions
        ]
        for a, b in zip(record.regions, photo.regions, strict=True):
            assert float(a.vector @ b.vector) > 0.999
    probe = ModelProbe.load(got[0].model)  # the actor names its models for the driver's check
    assert probe.clip.model_id == str(models.clip_dir)
    assert probe.detector_id == str(models.yolo_path)
    assert float(probe.clip.probe @ models.embedder.fingerprint()) > 0.99  # type: ignore[attr-defined]


def test_models_that_cannot_load_stop_the_run_with_their_message(
    models: Models, tmp_path: Path
) -> None:
    path = write_photos(tmp_path / "photos", 1)[0]
    actor = RegionActor(spec_for(models, clip_model=str(tmp_path / "no-such-clip")))
    row = decode_row({"path": str(path)}, max_megapixels=180.0, decode_side=1280)
    with pytest.raises(ModelLoadError, match="Could not load CLIP model"):
        outcomes(actor(as_batch([row])))


def test_an_actor_names_its_model_family_for_the_driver(
    models: Models, tiny_siglip_dir: Path
) -> None:
    probe = probe_models(spec_for(models, clip_model=str(tiny_siglip_dir), detector=None))
    assert isinstance(probe, ModelProbe), probe
    assert probe.clip.family == "siglip"
    record = model_record(probe.clip)  # what the driver writes into a new index
    assert record["model_family"] == "siglip"
    clip_meta = {k: str(v) for k, v in model_record(models.embedder).items()}  # type: ignore[arg-type]
    assert "not comparable" in (model_mismatch(clip_meta, probe.clip) or "")


def test_the_actor_detector_gets_the_run_detector_classes(models: Models) -> None:
    # The tiny YOLO is closed-vocabulary, so classes reaching its Detector are refused.
    probe = probe_models(spec_for(models, detector_classes=("flowerpot",)))
    assert isinstance(probe, CarriedError) and "--detector-classes" in probe.message
    raised = probe.error()  # the driver raises the worker's own class, not a string
    assert type(raised).__name__ == probe.kind and str(raised) == probe.message


def test_the_actor_reads_text_when_the_run_asks_for_it(
    models: Models, text_reader, rendered_words
) -> None:
    from indexer.textfold import fold

    items = rendered_words[:2]
    rows = [
        decode_row({"path": str(i.path)}, max_megapixels=180.0, decode_side=1280) for i in items
    ]
    got = outcomes(RegionActor(spec_for(models, ocr=True))(as_batch(rows)))
    for outcome, item in zip(got, items, strict=True):
        record = outcome.record
        assert record is not None and record.text_engine == text_reader.model_id
        local = text_reader.predict(read_photo(str(item.path)).image)
        assert [(t.text, t.box) for t in record.texts] == [(t.text, t.box) for t in local]
        assert any(fold(item.word) in fold(t.text) for t in record.texts)
    plain = outcomes(RegionActor(spec_for(models))(as_batch(rows[:1])))
    assert plain[0].record is not None and plain[0].record.text_engine is None


@pytest.mark.slow
def test_an_error_inside_the_cluster_reaches_the_driver_as_its_own_class(
    ray_cluster: str, models: Models, tmp_path: Path
) -> None:
    """Both ways a worker reports: the probe task's return value and the actor's rows."""
    import ray

    spec = spec_for(models, clip_model=str(tmp_path / "no-such-clip"))
    probed = ray.get(ray.remote(probe_models).remote(spec))
    assert isinstance(probed, CarriedError) and probed.kind == "ModelLoadError"
    with pytest.raises(ModelLoadError, match="Could not load CLIP model"):
        raise probed.error()

    path = write_photos(tmp_path / "photos", 1)[0]
    row = decode_row({"path": str(path)}, max_megapixels=180.0, decode_side=1280)
    actor = ray.remote(RegionActor).remote(spec)
    try:
        batch = ray.get(actor.__call__.remote(as_batch([row])))
    finally:
        ray.kill(actor)
    with pytest.raises(ModelLoadError, match="Could not load CLIP model"):
        outcomes(batch)
