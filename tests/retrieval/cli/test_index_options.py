"""The index command's options: each is on the command, with the library's defaults."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from indexer.settings import DetectOptions
from retrieval.cli import app
from retrieval.cli.index_options import DETECT
from retrieval.cli.indexing import index

HELP = CliRunner().invoke(app, ["index", "--help"], env={"COLUMNS": "200"}).output


@pytest.mark.parametrize(
    "flag",
    [
        "--detector", "--detector-classes", "--min-side", "--padding", "--photos-only",
        "--max-megapixels", "--faiss-index", "--prune", "--confidence", "--max-objects",
        "--detector-imgsz", "--batch-size", "--ray", "--ray-actors", "--ray-gpus",
        "--ray-cpus", "--ocr",
    ],
)  # fmt: skip
def test_every_index_option_is_on_the_command(flag: str) -> None:
    assert flag in HELP


def test_detection_defaults_are_the_librarys() -> None:
    defaults = {
        name: p.default
        for name, p in inspect.signature(index).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    library = DetectOptions()
    assert library == DETECT
    assert defaults["confidence"] == library.confidence
    assert defaults["max_objects"] == library.max_objects
    assert defaults["detector_imgsz"] == library.imgsz
