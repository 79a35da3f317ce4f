"""OCR accuracy and speed on photos with rendered words (``python benchmarks/ocr_accuracy.py``).

Two parts, each printed as a markdown table (progress on stderr):

* ``--engines rapidocr-openvino,rapidocr-onnxruntime,tesseract``: the engines alone, on the
  same rendered photos: recall (the word, case and accents folded, inside some line read in
  its photo) by text height, box IoU of that line with the word's ink box, and seconds per
  photo. This is how the engine and its settings were chosen (README, "Text in photos").
  Tesseract needs ``apt-get install tesseract-ocr`` and ``pip install pytesseract``; ONNX
  Runtime ``pip install onnxruntime`` (both in the ``ocr-compare`` extra).
* ``--index``: the whole path. The rendered photos are indexed with ``--photos-only --ocr``
  (a random CLIP: the vectors do not matter here) and each word is searched with
  ``Searcher.search(ocr=WORD)``: "right photo first" and the IoU of the returned box, by
  text height (targets: >= 95 % and IoU >= 0.5 for heights of at least 20 px).

Backgrounds are the COCO dev photos from ``../shared/assets`` (``--photos`` to change).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from _common import DEFAULT_PHOTOS, log, markdown_table, setup_environment

setup_environment()

import numpy as np  # noqa: E402

from indexer.geometry import box_iou  # noqa: E402
from indexer.textfold import fold  # noqa: E402
from tests.fixtures.rendered_text import RenderedWord, render_set  # noqa: E402

HEIGHTS = (16, 20, 24, 32, 48, 80)
Reader = Callable[[Path], list[tuple[tuple[float, float, float, float], str, float]]]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    return float(box_iou(np.asarray(a, dtype=np.float64), np.asarray([b]))[0])


def rapidocr_reader(backend: str, max_side: int) -> Reader:
    from PIL import Image

    from indexer.models.ocr import TextReader

    reader = TextReader(backend=backend, max_side=max_side).load()

    def read(path: Path) -> list[tuple[tuple[float, float, float, float], str, float]]:
        return [(t.box, t.text, t.confidence) for t in reader.predict(Image.open(path))]

    return read


def tesseract_reader() -> Reader:
    import pytesseract
    from PIL import Image

    def read(path: Path) -> list[tuple[tuple[float, float, float, float], str, float]]:
        data = pytesseract.image_to_data(
            Image.open(path), config="--psm 11", output_type=pytesseract.Output.DICT
        )
        out = []
        for text, conf, x, y, w, h in zip(
            data["text"],
            data["conf"],
            data["left"],
            data["top"],
            data["width"],
            data["height"],
            strict=True,
        ):
            if str(text).strip() and float(conf) >= 0:
                out.append(((x, y, x + w, y + h), str(text), float(conf) / 100))
        return out

    return read


def engine_rows(name: str, read: Reader, rendered: Sequence[RenderedWord]) -> list[list[str]]:
    read(rendered[0].path)  # warm-up
    found: dict[int, list[bool]] = defaultdict(list)
    ious: dict[int, list[float]] = defaultdict(list)
    seconds: list[float] = []
    for item in rendered:
        t = time.perf_counter()
        lines = read(item.path)
        seconds.append(time.perf_counter() - t)
        hits = [box for box, text, _ in lines if fold(item.word) in fold(text)]
        found[item.height].append(bool(hits))
        if hits:
            ious[item.height].append(max(iou(item.box, b) for b in hits))
    rows = []
    for height in sorted(found):
        share = sum(found[height]) / len(found[height])
        median_iou = statistics.median(ious[height]) if ious[height] else 0.0
        rows.append(
            [name, str(height), f"{share:.0%}", f"{median_iou:.2f}", str(len(found[height]))]
        )
    total = [x for h in found for x in found[h]]
    rows.append(
        [
            f"**{name}**",
            "all",
            f"{sum(total) / len(total):.0%}",
            f"{statistics.median(seconds):.3f} s/photo (median)",
            str(len(total)),
        ]
    )
    return rows


def index_rows(rendered: Sequence[RenderedWord], photos_dir: Path) -> list[list[str]]:
    from indexer.indexing import Indexer
    from retrieval import Searcher
    from tests.model_factory import make_tiny_clip

    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
        clip = make_tiny_clip(Path(tmp) / "clip")
        index = Path(tmp) / "index"
        t = time.perf_counter()
        stats = Indexer(index, clip_model=str(clip), detect_objects=False, ocr=True).index(
            [photos_dir]
        )
        log(
            f"indexed {stats.indexed} photos, {stats.texts} text lines in "
            f"{time.perf_counter() - t:.1f} s"
        )
        first: dict[int, list[bool]] = defaultdict(list)
        ious: dict[int, list[float]] = defaultdict(list)
        with Searcher(index) as searcher:
            for item in rendered:
                hits = searcher.search(ocr=item.word, top_k=5)
                ok = bool(hits) and Path(hits[0].image).name == item.path.name
                first[item.height].append(ok)
                ious[item.height].append(iou(item.box, hits[0].box) if ok else 0.0)
    rows = []
    for height in sorted(first):
        share = sum(first[height]) / len(first[height])
        target = "≥ 95 %, IoU ≥ 0.5" if height >= 20 else "(reported)"
        rows.append(
            [
                str(height),
                str(len(first[height])),
                f"{share:.0%}",
                f"{statistics.median(ious[height]):.2f}",
                f"{sum(i >= 0.5 for i in ious[height]) / len(ious[height]):.0%}",
                target,
            ]
        )
    big = [x for h in first if h >= 20 for x in first[h]]
    rows.append(["**≥ 20**", str(len(big)), f"**{sum(big) / len(big):.0%}**", "", "", "≥ 95 %"])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--per-height", type=int, default=16, help="photos per text height")
    parser.add_argument("--heights", default=",".join(map(str, HEIGHTS)))
    parser.add_argument("--engines", default="", help="comma-separated engines to compare")
    parser.add_argument("--max-side", type=int, default=960, help="RapidOCR detection bound")
    parser.add_argument("--index", action="store_true", help="measure the whole index+search path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    backgrounds = sorted(args.photos.glob("*.jpg"))
    if not backgrounds:
        log(f"no photos in {args.photos}")
        return 2
    heights = [int(h) for h in args.heights.split(",")]
    with tempfile.TemporaryDirectory(prefix="ocr-rendered-") as tmp:
        rendered = render_set(
            backgrounds, Path(tmp), heights, seed=args.seed, per_height=args.per_height
        )
        log(f"rendered {len(rendered)} photos")
        if args.engines:
            rows: list[list[str]] = []
            for name in args.engines.split(","):
                log(f"engine {name} ...")
                if name == "tesseract":
                    read = tesseract_reader()
                else:
                    read = rapidocr_reader(name.split("-", 1)[1], args.max_side)
                rows += engine_rows(name, read, rendered)
            print(
                markdown_table(
                    ["engine", "text height px", "recall", "IoU / speed", "photos"], rows
                )
            )
        if args.index:
            rows = index_rows(rendered, Path(tmp))
            print(
                markdown_table(
                    [
                        "text height px",
                        "words",
                        "right photo first",
                        "median IoU",
                        "IoU ≥ 0.5",
                        "target",
                    ],
                    rows,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
