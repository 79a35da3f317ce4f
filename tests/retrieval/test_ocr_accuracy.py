"""The OCR accuracy check, small enough for every CI run (the full set: benchmarks/ocr_accuracy.py).

Words rendered on the checkout's data/ photos at text heights of 20-56 px, in several
fonts and colours, rotated up to 15 degrees, are indexed with --ocr; searching each word
must return its photo first with a text box on the rendered word (IoU >= 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.geometry import box_iou
from retrieval import Searcher
from tests.fixtures import REPO_ROOT, Models, make_indexer
from tests.fixtures.rendered_text import render_set


@pytest.fixture(scope="module")
def accuracy_set(tmp_path_factory: pytest.TempPathFactory):
    backgrounds = sorted(
        p for p in (REPO_ROOT / "data").iterdir() if p.suffix != ".md" and p.stem != "shop_front"
    )
    folder = tmp_path_factory.mktemp("accuracy")
    return folder, render_set(backgrounds, folder, [20, 32, 56], seed=11, max_angle=15)


def test_each_rendered_word_finds_its_photo_first_with_its_box(
    accuracy_set, models: Models, text_reader, tmp_path: Path
) -> None:
    folder, rendered = accuracy_set
    assert len(rendered) >= 12
    index_dir = tmp_path / "index"
    stats = make_indexer(
        models, index_dir, detect_objects=False, ocr=True, text_reader=text_reader
    ).index([folder])
    assert stats.read == len(rendered) and stats.failures == 0
    misses = []
    with Searcher(index_dir, load_encoder=False) as searcher:
        for item in rendered:
            hits = searcher.search(ocr=item.word, top_k=3)
            first = hits[0] if hits else None
            iou = 0.0
            if first is not None and Path(first.image).name == item.path.name:
                iou = float(box_iou(np.array(item.box), np.array([first.box]))[0])
            if iou < 0.5:
                misses.append((item.word, item.height, item.angle, [h.text for h in hits], iou))
    # The target is >= 95 % (README); on this small set one miss at most.
    assert len(misses) <= 1, misses
