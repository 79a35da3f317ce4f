"""Preloading the text encoder: the index's model read without SQLAlchemy, the same encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.models.lifecycle import ModelChoice
from indexer.models.text import OpenVinoTextEncoder, load_text_encoder
from indexer.settings import openvino_available
from indexer.store import DB_NAME, Store
from indexer.store.schema import Meta
from retrieval import Searcher
from retrieval.search.preload import (
    INDEX_DB,
    META_TABLE,
    TextPreload,
    preload_text_encoder,
    recorded_model,
)


def test_names_match_the_schema() -> None:
    assert (DB_NAME, Meta.__tablename__) == (INDEX_DB, META_TABLE)


def test_recorded_model(tiny_index: Path, tmp_path: Path) -> None:
    with Store(tiny_index) as store:
        assert recorded_model(tiny_index) == store.get_meta("clip_model")
    assert recorded_model(tmp_path / "nowhere") is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / DB_NAME).write_bytes(b"not a database" * 100)
    assert recorded_model(broken) is None
    assert preload_text_encoder(broken) is None
    Store(tmp_path / "fresh", create=True).close()  # no model recorded before the first batch
    assert recorded_model(tmp_path / "fresh") is None


@pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")
def test_preload_gives_the_searchers_encoder(tiny_index: Path) -> None:
    model = recorded_model(tiny_index)
    preload = preload_text_encoder(tiny_index, device="cpu")
    assert isinstance(preload, TextPreload) and preload.model_id == model
    encoder = preload.result()
    assert isinstance(encoder, OpenVinoTextEncoder)
    assert encoder._probe is not None  # the probe ran on the thread
    direct = load_text_encoder(model, "cpu")
    assert direct is not None
    np.testing.assert_allclose(encoder.fingerprint(), direct.fingerprint(), atol=1e-6)
    with Searcher(tiny_index, device="cpu", preload=preload_text_encoder(tiny_index)) as s:
        assert isinstance(s.text_encoder, OpenVinoTextEncoder)
        np.testing.assert_allclose(
            s.text_encoder.embed_text("a cat"), direct.embed_text("a cat"), atol=1e-6
        )


def test_preload_of_another_model_is_not_used(tiny_index: Path, tiny_siglip_dir: Path) -> None:
    other = TextPreload(ModelChoice(str(tiny_siglip_dir), "cpu"))
    with Searcher(tiny_index, device="cpu", preload=other) as searcher:
        encoder = searcher.text_encoder
        assert encoder.model_id == recorded_model(tiny_index)
    other.result()
