"""Shared pytest fixtures: tiny random models and generated photos, built once per session.

The models are written to disk and loaded back by the code under test through the same
``from_pretrained`` / ``YOLO(path)`` calls a real checkpoint takes (see ``model_factory``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

from indexer.settings import configure_ultralytics

# Before anything imports ultralytics: keep it off the network and quiet.
configure_ultralytics()
# Converted (OpenVINO) models of the tiny test models go to a private cache, not ~/.cache,
# removed at exit (about 350 MB a run).
if "OBJSEARCH_CACHE" not in os.environ:
    os.environ["OBJSEARCH_CACHE"] = tempfile.mkdtemp(prefix="objsearch-cache-")
    atexit.register(shutil.rmtree, os.environ["OBJSEARCH_CACHE"], ignore_errors=True)
if "YOLO_CONFIG_DIR" not in os.environ:  # a private settings dir, removed at exit
    os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="objsearch-yolo-cfg-")
    atexit.register(shutil.rmtree, os.environ["YOLO_CONFIG_DIR"], ignore_errors=True)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.family_factory import (  # noqa: E402
    make_tiny_altclip,
    make_tiny_siglip,
    make_tiny_siglip2,
)
from tests.fixtures import REPO_ROOT, Models  # noqa: E402
from tests.fixtures.ray_helpers import require_ray  # noqa: E402
from tests.model_factory import make_sample_photos, make_tiny_clip, make_tiny_yolo  # noqa: E402

SHARED_ASSETS = REPO_ROOT.parent / "shared" / "assets"


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP checkpoint folder (model, tokenizer, image processor)."""
    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SigLIP checkpoint (SentencePiece tokenizer, squashed 64 px pixels)."""
    return make_tiny_siglip(tmp_path_factory.mktemp("tiny_siglip"))


@pytest.fixture(scope="session")
def tiny_siglip_gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SigLIP with a Gemma tokenizer: the fixed-resolution SigLIP 2 layout."""
    return make_tiny_siglip(tmp_path_factory.mktemp("tiny_siglip_gemma"), tokenizer="gemma")


@pytest.fixture(scope="session")
def tiny_siglip2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SigLIP 2 NaFlex checkpoint (Gemma tokenizer, up to 64 patches)."""
    return make_tiny_siglip2(tmp_path_factory.mktemp("tiny_siglip2"))


@pytest.fixture(scope="session")
def tiny_altclip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random AltCLIP (XLM-R text tower, multilingual tokenizer)."""
    return make_tiny_altclip(tmp_path_factory.mktemp("tiny_altclip"))


@pytest.fixture(scope="session")
def tiny_open_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random open_clip checkpoint (``open_clip_config.json`` + safetensors)."""
    pytest.importorskip("open_clip")
    from tests.openclip_factory import make_tiny_open_clip

    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny_open_clip"))


@pytest.fixture(scope="session")
def tiny_yolo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random YOLO11n ``.pt`` that detects ~50 'cat' boxes on any image (see factory)."""
    return make_tiny_yolo(tmp_path_factory.mktemp("tiny_yolo") / "tiny-yolo11n.pt")


@pytest.fixture(scope="session")
def sample_photos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of generated photos in mixed formats, with a nested sub-folder and an EXIF one."""
    root = tmp_path_factory.mktemp("photos")
    make_sample_photos(root)
    return root


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    """``../shared/assets`` beside the checkout (real detectors, COCO photos); skip if absent."""
    if not SHARED_ASSETS.is_dir():
        pytest.skip(
            "../shared/assets not found: real-asset tests need the shared assets beside the checkout"
        )
    return SHARED_ASSETS


@pytest.fixture(scope="module")
def models(tiny_clip_dir: Path, tiny_yolo_path: Path) -> Models:
    """The tiny models, loaded once per module and injected into every Indexer."""
    from indexer.models import ClipEmbedder, Detector

    return Models(
        tiny_clip_dir,
        tiny_yolo_path,
        # PyTorch: no per-session OpenVINO conversion (tests/indexer/models/test_openvino.py
        # and the lazily loading Indexers cover that path).
        ClipEmbedder(str(tiny_clip_dir), "cpu", backend="torch"),
        Detector(str(tiny_yolo_path), "cpu", backend="torch"),
    )


@pytest.fixture(scope="session")
def tiny_index(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip_dir: Path,
    tiny_yolo_path: Path,
    sample_photos_dir: Path,
) -> Path:
    """An index of the sample photos built with the tiny models (read-only for tests)."""
    from indexer.indexing import Indexer
    from tests.fixtures import FAST

    index_dir = tmp_path_factory.mktemp("tiny_index") / "index"
    stats = Indexer(
        index_dir,
        clip_model=str(tiny_clip_dir),
        detector_weights=str(tiny_yolo_path),
        device="cpu",
        options=FAST,
    ).index([sample_photos_dir])
    assert stats.failures == 0 and stats.objects > 0
    return index_dir


@pytest.fixture(scope="session")
def text_reader():  # -> indexer.models.ocr.TextReader
    """The real OCR models (they ship inside the rapidocr wheel), loaded once."""
    from indexer.models.ocr import TextReader

    return TextReader().load()


@pytest.fixture(scope="session")
def rendered_words(tmp_path_factory: pytest.TempPathFactory):  # -> list[RenderedWord]
    """Four of the checkout's data/ photos with one word each (24-48 px, up to 10 degrees)."""
    from tests.fixtures.rendered_text import render_set

    # (shop_front.jpg has words of its own: a background must have none)
    skip = {".md"}
    backgrounds = sorted(
        p for p in (REPO_ROOT / "data").iterdir() if p.suffix not in skip and p.stem != "shop_front"
    )[:4]
    return render_set(
        backgrounds,
        tmp_path_factory.mktemp("rendered"),
        [24, 48],
        per_height=2,
        seed=3,
        max_angle=10,
    )


# One real local Ray cluster for all Ray tests (indexing on Ray, sharded search), started
# once in the test process: starting Ray takes seconds, so the tests share it (the code
# under test uses a session that is already running). Ray is an optional extra: without it
# these tests skip with that reason, except in CI, which installs it and fails without it.
@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local two-CPU Ray cluster for the whole session; yields its GCS address."""
    import logging

    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=256 * 2**20,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
