"""Fixtures for the server tests: a private photo copy, its index, and a running server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import Models, cli_ocr_index
from tests.fixtures.browser import chromium
from tests.fixtures.server import Server, build_index, run_server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module (skipped without one, failed in CI)."""
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def served_photos(tmp_path_factory: pytest.TempPathFactory, sample_photos_dir: Path) -> Path:
    """A private copy of the sample photos (tests replace files in it)."""
    target = tmp_path_factory.mktemp("served") / "photos"
    shutil.copytree(sample_photos_dir, target)
    return target


@pytest.fixture(scope="module")
def served_index(
    tmp_path_factory: pytest.TempPathFactory, models: Models, served_photos: Path
) -> Path:
    index_dir = tmp_path_factory.mktemp("served-index") / "index"
    build_index(models, served_photos, index_dir)
    return index_dir


@pytest.fixture(scope="module")
def server(served_index: Path, models: Models) -> Iterator[Server]:
    with run_server(served_index, models.clip_dir) as running:
        yield running


@pytest.fixture(scope="module")
def text_server(
    models: Models, rendered_words, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server over photos with words rendered on them, indexed with --ocr."""
    root = tmp_path_factory.mktemp("text-server")
    index_dir = cli_ocr_index(models, [item.path for item in rendered_words], root)
    with run_server(index_dir, models.clip_dir) as running:
        yield running


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos with dates, cameras, places and folders, plus an exact copy of one of them."""
    from tests.fixtures.exif_photos import make_library

    root = make_library(tmp_path_factory.mktemp("library") / "photos")
    shutil.copyfile(root / "trips" / "2023" / "beach_0.jpg", root / "home" / "beach_copy.jpg")
    return root


@pytest.fixture(scope="module")
def library_server(
    tmp_path_factory: pytest.TempPathFactory, models: Models, library: Path
) -> Iterator[Server]:
    """A server over :func:`library`, indexed with the tiny models."""
    index_dir = tmp_path_factory.mktemp("library-index") / "index"
    build_index(models, library, index_dir)
    with run_server(index_dir, models.clip_dir) as running:
        yield running
