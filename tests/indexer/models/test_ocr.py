"""The OCR model class: real RapidOCR models on photos with rendered words."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexer.geometry import box_iou
from indexer.models.ocr import TextReader
from indexer.textfold import fold


def test_reads_each_rendered_word_with_a_box_on_its_ink(text_reader: TextReader, rendered_words):
    assert rendered_words, "the renderer made no photo"
    for item in rendered_words:
        lines = text_reader.predict(Image.open(item.path))
        hits = [line for line in lines if fold(item.word) in fold(line.text)]
        assert hits, f"{item.word} not read in {item.path.name}: {[x.text for x in lines]}"
        best = max(float(box_iou(np.array(item.box), np.array([h.box]))[0]) for h in hits)
        assert best >= 0.5, (item.word, item.box, [h.box for h in hits])
        assert all(text_reader.min_confidence <= h.confidence <= 1.0 for h in hits)


def test_boxes_come_back_in_original_pixels(text_reader: TextReader, rendered_words):
    item = max(rendered_words, key=lambda w: w.height)
    photo = Image.open(item.path)
    half = photo.resize((photo.width // 2, photo.height // 2))
    lines = text_reader.predict(half, scale=(2.0, 2.0))
    hits = [line for line in lines if fold(item.word) in fold(line.text)]
    assert hits
    iou = max(float(box_iou(np.array(item.box), np.array([h.box]))[0]) for h in hits)
    assert iou >= 0.4  # read at half size, boxes scaled back to the photo's pixels


def test_plain_photo_has_no_text_and_junk_is_dropped(text_reader: TextReader) -> None:
    flat = Image.new("RGB", (320, 240), (90, 140, 200))
    assert text_reader.predict(flat) == []
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8))
    assert all(line.confidence >= text_reader.min_confidence for line in text_reader.predict(noise))


def test_model_id_names_engine_runtime_and_bound() -> None:
    reader = TextReader(max_side=640, backend="onnxruntime")
    assert reader.model_id == "rapidocr/PP-OCRv6-small/onnxruntime/640"


@pytest.mark.parametrize("kwargs", [{"max_side": 8}, {"min_confidence": 1.5}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TextReader(**kwargs)


def test_refit_quad_keeps_a_box_at_its_ratio_and_fits_it_tighter_below() -> None:
    from indexer.models.ocr import refit_quad

    angle = np.radians(12)
    u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    centre = np.array([300.0, 200.0])
    quad = np.array(
        [centre + sx * 150 * u + sy * 30 * v for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    )
    assert np.allclose(refit_quad(quad, 1.6, 1.6), quad, atol=1e-6)
    tight = refit_quad(quad, 1.6, 0.7)
    assert np.allclose(tight.mean(axis=0), centre)
    width, height = np.linalg.norm(tight[1] - tight[0]), np.linalg.norm(tight[3] - tight[0])
    assert 250 < width < 300 and 30 < height < 60  # both sides shrink by the same margin
    assert np.isclose(300 - width, 60 - height)
