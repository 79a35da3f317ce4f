"""RegionEmbedder: decoded photos -> records with vectors, without touching any store."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from indexer.indexing.regions import RegionEmbedder
from indexer.media.decode import read_photo
from indexer.store import KIND_IMAGE, KIND_OBJECT
from tests.fixtures import FAST, Models, write_photo


def test_regions_are_computed_in_original_pixels(models: Models, tmp_path: Path) -> None:
    paths = [tmp_path / "a.jpg", tmp_path / "b.png"]
    for i, path in enumerate(paths):
        write_photo(path, size=(160, 120), seed=i)
    photos = [read_photo(str(p), decode_side=None) for p in paths]
    timings: dict[str, float] = defaultdict(float)
    step = RegionEmbedder(models.embedder, models.detector, FAST, timings)  # type: ignore[arg-type]

    records = step.embed(photos)

    assert [r.path for r in records] == [str(p) for p in paths]
    assert not list(tmp_path.glob("*.db"))  # computing regions writes nothing
    for record in records:
        kinds = [r.kind for r in record.regions]
        assert kinds[0] == KIND_IMAGE and set(kinds[1:]) <= {KIND_OBJECT}
        assert 1 <= len(kinds) - 1 <= FAST.max_objects
        assert record.regions[0].box == (0.0, 0.0, 160.0, 120.0)
        for region in record.regions[1:]:
            x1, y1, x2, y2 = region.box
            assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120
        vectors = np.stack([r.vector for r in record.regions])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert record.caption.endswith("cats") or record.caption.endswith("cat")
    assert set(timings) >= {"detect", "crop", "embed"}  # the caller's counters


def test_photos_only_skips_detection(models: Models, tmp_path: Path) -> None:
    write_photo(tmp_path / "a.jpg", seed=3)
    photo = read_photo(str(tmp_path / "a.jpg"))
    (record,) = RegionEmbedder(models.embedder, None, FAST).embed([photo])  # type: ignore[arg-type]
    assert [r.kind for r in record.regions] == [KIND_IMAGE] and record.caption == ""
