"""The photo library the XMP tests export: six generated photos in two folders, indexed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import Models, make_indexer, write_photo


def make_library(root: Path, models: Models) -> tuple[Path, Path]:
    """Six photos in two folders, indexed with the tiny models: (photos folder, index)."""
    photos = root / "photos"
    for i in range(3):
        write_photo(photos / "trips" / f"trip{i}.jpg", (96, 72), seed=i)
        write_photo(photos / "home" / f"home{i}.png", (80, 64), seed=10 + i)
    index_dir = root / "index"
    stats = make_indexer(models, index_dir).index([photos])
    assert stats.indexed == 6 and stats.objects > 0
    return photos, index_dir


@pytest.fixture(scope="module")
def shared_library(tmp_path_factory: pytest.TempPathFactory, models: Models) -> tuple[Path, Path]:
    return make_library(tmp_path_factory.mktemp("library"), models)


@pytest.fixture
def library(shared_library: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    """The module's library (index untouched by the tests); its sidecars go after each test."""
    photos, _ = shared_library
    yield shared_library
    for sidecar in photos.rglob("*.xmp"):
        sidecar.unlink()


@pytest.fixture
def fresh_library(tmp_path: Path, models: Models) -> tuple[Path, Path]:
    """A library of the test's own, for tests that change photos and re-index."""
    return make_library(tmp_path, models)
