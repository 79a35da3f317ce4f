"""Reading the text in photos: a photo -> text lines (box, text, confidence).

:class:`TextReader` wraps RapidOCR (PP-OCRv6 small detection and recognition models plus
the PP-OCR angle classifier, shipped as ONNX inside the ``rapidocr`` wheel, so it runs
offline). It runs them through OpenVINO when it is installed (about 3x faster than ONNX
Runtime on this project's CPU, see the README), else through ONNX Runtime.

Why it is cheap on photos with little text: detection runs once per photo on an input whose
longest side is bounded (``max_side``), and recognition runs only on the lines detection
found. Lines below ``min_confidence`` (recognition's own score) are dropped, and so are
lines with no letter or digit: both are mostly texture read as text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ModelLoadError, first_line
from ..settings import DEFAULT_OCR_MIN_CONFIDENCE, DEFAULT_OCR_SIDE, openvino_available

log = logging.getLogger("objsearch")

ENGINE_FAMILY = "rapidocr/PP-OCRv6-small"
# How far detection grows each found text kernel into a line box. Recognition reads the
# crops of PP-OCR's own 1.6, which leaves room around the letters; the boxes stored and shown
# are recomputed for BOX_UNCLIP, which fits the letters (on the rendered test set the median
# IoU with the ink box goes from 0.59 to 0.85-0.88; see the README, "Text in photos").
DETECT_UNCLIP = 1.6
BOX_UNCLIP = 0.7


@dataclass(frozen=True)
class TextLine:
    """One line of text: its axis-aligned box in original-photo pixels (a rotated line gets
    the box around it), the recognized string and recognition's confidence (0-1)."""

    box: tuple[float, float, float, float]
    text: str
    confidence: float


def _has_word(text: str) -> bool:
    return any(c.isalnum() for c in text)


def refit_quad(quad: np.ndarray, detected: float, wanted: float) -> np.ndarray:
    """The line box detection would give with unclip ratio ``wanted`` instead of ``detected``.

    PP-OCR's detection finds a shrunken text kernel and grows it by ``D = A * r / L`` (its
    area times the ratio over its perimeter) into the box ``quad`` (four corners, in order
    around the box). Solving ``side = kernel side + 2 D`` for the kernel and growing that by
    the other ratio gives the other box, in the line's own (rotated) frame.
    """
    p0, p1, p2, p3 = quad
    centre = quad.mean(axis=0)
    along, across = (p1 - p0 + p2 - p3) / 2, (p3 - p0 + p2 - p1) / 2
    width, height = float(np.linalg.norm(along)), float(np.linalg.norm(across))
    if width < 1 or height < 1:
        return quad
    low, high = 0.0, min(width, height) / 2  # the growth D, found by bisection
    for _ in range(40):
        grow = (low + high) / 2
        kw, kh = width - 2 * grow, height - 2 * grow
        if grow < kw * kh * detected / (2 * (kw + kh)):
            low = grow
        else:
            high = grow
    kw, kh = width - 2 * low, height - 2 * low
    grow = kw * kh * wanted / (2 * (kw + kh))
    u, v = along / width * (kw / 2 + grow), across / height * (kh / 2 + grow)
    return np.array([centre - u - v, centre + u - v, centre + u + v, centre - u + v])


class TextReader:
    """Detect and read text lines (see the module docstring). Load once, predict many."""

    def __init__(
        self,
        *,
        max_side: int = DEFAULT_OCR_SIDE,
        min_confidence: float = DEFAULT_OCR_MIN_CONFIDENCE,
        backend: str | None = None,
    ) -> None:
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32 pixels, got {max_side}")
        if not 0.0 <= min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {min_confidence}")
        self.max_side = max_side
        self.min_confidence = min_confidence
        self.backend = backend or ("openvino" if openvino_available() else "onnxruntime")
        self._engine: Any = None

    @property
    def model_id(self) -> str:
        """What the index records for each photo read (engine, runtime, input bound)."""
        return f"{ENGINE_FAMILY}/{self.backend}/{self.max_side}"

    def load(self) -> TextReader:
        """Build the engine (reads the bundled models; no network). Idempotent."""
        if self._engine is not None:
            return self
        try:
            from rapidocr import EngineType, RapidOCR
        except ImportError as exc:
            raise ModelLoadError(
                f"--ocr needs the rapidocr package ({first_line(exc)}): "
                'pip install "rapidocr>=3.10".'
            ) from None
        engine = EngineType.OPENVINO if self.backend == "openvino" else EngineType.ONNXRUNTIME
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.text_score": self.min_confidence,
            "Det.limit_type": "max",
            "Det.limit_side_len": self.max_side,
            "Det.unclip_ratio": DETECT_UNCLIP,
        }
        for model in ("Det", "Cls", "Rec"):
            params[f"{model}.engine_type"] = engine
        try:
            self._engine = RapidOCR(params=params)
        except Exception as exc:  # a missing runtime or a damaged wheel
            raise ModelLoadError(
                f"Cannot load the OCR models ({self.backend}): {first_line(exc)}"
            ) from None
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return self

    def predict(
        self, image: Image.Image, scale: tuple[float, float] = (1.0, 1.0)
    ) -> list[TextLine]:
        """The text lines of ``image``, boxes multiplied by ``scale`` (decoded -> original
        pixels), top to bottom; an image without text gives an empty list."""
        self.load()
        pixels = np.asarray(image.convert("RGB"))
        # RapidOCR expects OpenCV's channel order for arrays.
        result = self._engine(np.ascontiguousarray(pixels[:, :, ::-1]))
        if result.boxes is None or result.txts is None:
            return []
        return self._lines(result.boxes, result.txts, result.scores, scale, image.size)

    def _lines(
        self,
        quads: np.ndarray,
        texts: Sequence[str],
        scores: Sequence[float],
        scale: tuple[float, float],
        size: tuple[int, int],
    ) -> list[TextLine]:
        sx, sy = scale
        w, h = size
        out: list[TextLine] = []
        for quad, text, score in zip(quads, texts, scores, strict=True):
            text = str(text).strip()
            if float(score) < self.min_confidence or not _has_word(text):
                continue
            fitted = refit_quad(np.asarray(quad, dtype=np.float64), DETECT_UNCLIP, BOX_UNCLIP)
            xs = np.clip(fitted[:, 0], 0, w)
            ys = np.clip(fitted[:, 1], 0, h)
            box = (
                float(xs.min() * sx),
                float(ys.min() * sy),
                float(xs.max() * sx),
                float(ys.max() * sy),
            )
            out.append(TextLine(box, text, float(score)))
        return out
