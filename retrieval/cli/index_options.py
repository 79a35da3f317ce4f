"""The ``index`` command's options, as Typer annotations (the shared ones are in .app).

Kept apart so the command reads as what it does: settle the options, run an
:class:`~indexer.indexing.Indexer` with a progress bar, report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.settings import DEFAULT_DETECTOR, ENV_DETECTOR, ENV_RAY_ADDRESS, DetectOptions

DETECT = DetectOptions()  # the CLI defaults are the library defaults

PhotosOpt = Annotated[
    list[Path],
    typer.Argument(help="Photo folders (walked recursively) or files.", show_default=False),
]
DetectorOpt = Annotated[
    str | None,
    typer.Option(
        "--detector",
        envvar=ENV_DETECTOR,
        help=f"Ultralytics detector (YOLOv8/11/26, RT-DETR, YOLO-World, YOLOE): a local .pt path or a name such as yolo11n.pt. [default: {DEFAULT_DETECTOR}]",
    ),
]
DetectorClassesOpt = Annotated[
    str | None,
    typer.Option(
        "--detector-classes",
        help="Comma-separated class names for an open-vocabulary detector (YOLO-World, YOLOE), e.g. 'flowerpot,butterfly'.",
    ),
]
MinSideOpt = Annotated[int, typer.Option(help="Minimum object box side, in original pixels.")]
PaddingOpt = Annotated[
    float, typer.Option(help="Context added around each crop, as a fraction of the box size.")
]
PhotosOnlyOpt = Annotated[
    bool, typer.Option("--photos-only", help="Skip detection: embed whole photos only.")
]
MaxMegapixelsOpt = Annotated[
    float, typer.Option(help="Refuse photos larger than this (decompression-bomb guard).")
]
FaissIndexOpt = Annotated[
    str,
    typer.Option(
        "--faiss-index",
        help="FAISS index type: auto, flat, hnsw, ivf or ivfpq (compressed, for millions of regions).",
    ),
]
PruneOpt = Annotated[
    bool,
    typer.Option(
        "--prune/--no-prune", help="Remove photos that disappeared from the given folders."
    ),
]

ConfidenceOpt = Annotated[float, typer.Option(help="Detector confidence threshold.")]
MaxObjectsOpt = Annotated[int, typer.Option(help="Maximum objects kept per photo.")]
DetectorImgszOpt = Annotated[
    int,
    typer.Option(
        "--detector-imgsz",
        help="Detector input size in pixels (multiples of 32). Smaller is faster but finds fewer objects: at 480, about 4 in 5 of the boxes found at 640 (see the README).",
    ),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        help="Photos per detector batch and per commit. [default: 16 on CPU, 128 on CUDA]"
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        envvar=ENV_RAY_ADDRESS,
        metavar="auto|local|ray://HOST:PORT",
        help='Run detection and embedding on a Ray cluster (pip install "objsearch\\[ray]"): auto joins a running cluster or starts a local one, local always starts one, ray://HOST:PORT connects through Ray Client, HOST:PORT to a cluster\'s GCS. Every node must see the photos under the same paths (see docs/scaling.md).',
        show_default=False,
    ),
]
RayActorsOpt = Annotated[
    int | None,
    typer.Option(
        "--ray-actors",
        help="Detect+embed actors (default: one per GPU, or one per node without GPUs).",
        show_default=False,
    ),
]
RayGpusOpt = Annotated[
    float | None,
    typer.Option(
        "--ray-gpus",
        help="GPUs each actor reserves (default: 1 on clusters with GPUs, else 0).",
        show_default=False,
    ),
]
RayCpusOpt = Annotated[
    float | None,
    typer.Option(
        "--ray-cpus",
        help="CPUs each actor reserves and computes with (default: reserves 1, computes with its share of the cluster's cores).",
        show_default=False,
    ),
]
OcrIndexOpt = Annotated[
    bool | None,
    typer.Option(
        "--ocr/--no-ocr",
        help="Also read the text in photos (signs, labels, covers), found with 'search --ocr WORDS'. On an existing index, photos not read yet are read without running the other models. [default: OBJSEARCH_OCR, else off]",
        show_default=False,
    ),
]
