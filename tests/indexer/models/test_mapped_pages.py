"""Mapped model pages: which mappings are released, and a real compiled model giving its
pages back after its first inference with unchanged outputs."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from indexer.models.mapped_pages import Mapping, mappings_under, parse_maps
from indexer.settings import cache_dir, openvino_available

MAPS = """\
7f0000000000-7f0000100000 r--s 00000000 fd:01 11 /cache/openvino/compiled/1.blob
7f0000100000-7f0000200000 r--p 00000000 fd:01 12 /cache/openvino/tower/model.bin
7f0000200000-7f0000300000 rw-s 00000000 fd:01 13 /cache/openvino/compiled/2.blob
7f0000300000-7f0000400000 r--s 00000000 fd:01 14 /elsewhere/model.bin
7f0000400000-7f0000500000 rw-p 00000000 00:00 0
7f0000500000-7f0000600000 r--s 00000000 fd:01 15 /cache/openvino/a folder/with spaces.bin
7f0000600000-7f0000700000 r--s 00000000 fd:01 16 /cache/openvino-other/3.blob
"""


def test_parse_maps_reads_file_mappings_with_spaces_in_their_paths() -> None:
    maps = parse_maps(MAPS)
    assert len(maps) == 6  # the anonymous mapping has no file
    assert maps[0] == Mapping(
        0x7F0000000000, 0x7F0000100000, "r--s", "/cache/openvino/compiled/1.blob"
    )
    assert maps[4].path == "/cache/openvino/a folder/with spaces.bin"


@pytest.mark.parametrize(
    ("path", "chosen"),
    [
        ("/cache/openvino/compiled/1.blob", True),  # read-only shared, inside the folder
        ("/cache/openvino/tower/model.bin", False),  # private: a written page could be lost
        ("/cache/openvino/compiled/2.blob", False),  # writable
        ("/elsewhere/model.bin", False),  # another folder
        ("/cache/openvino/a folder/with spaces.bin", True),
        ("/cache/openvino-other/3.blob", False),  # a sibling whose name starts the same
    ],
)
def test_only_read_only_shared_mappings_inside_the_folder_are_chosen(
    path: str, chosen: bool
) -> None:
    picked = {m.path for m in mappings_under(Path("/cache/openvino"), parse_maps(MAPS))}
    assert (path in picked) is chosen


def resident_kib(folder: Path) -> dict[str, int]:
    """Resident KiB of each mapping of a file under ``folder``, from /proc/self/smaps."""
    out: dict[str, int] = {}
    path = None
    prefix = str(folder.resolve()) + "/"
    with open("/proc/self/smaps", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split(maxsplit=5)
            if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
                path = fields[5].strip() if len(fields) == 6 else None
            elif fields[0] == "Rss:" and path and path.startswith(prefix):
                out[path] = out.get(path, 0) + int(fields[1])
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")
@pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")
def test_a_compiled_model_gives_back_its_mapped_pages_after_its_first_inference() -> None:
    from indexer.models.openvino import compile_ir, import_openvino, infer_rows

    ov = import_openvino()
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((512, 2048)).astype(np.float32)  # 4 MiB of constants
    x = ov.opset13.parameter([-1, 512], np.float32)
    model = ov.Model([ov.opset13.matmul(x, ov.opset13.constant(weights), False, False)], [x])
    folder = cache_dir() / "openvino" / f"mapped-test-{uuid.uuid4().hex}"
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)

    request = compile_ir(folder / "model.xml", "fp32")
    rows = rng.standard_normal((6, 512)).astype(np.float32)
    # Without the release, the model's mapped file stays resident after an inference.
    np.asarray(request._request.infer({0: rows[:2]})[0])
    before = resident_kib(cache_dir() / "openvino")
    assert before and max(before.values()) > 0, before

    assert request.fresh
    first = infer_rows(request, {0: rows})  # split into 2 + 4 rows, then released
    assert not request.fresh
    after = resident_kib(cache_dir() / "openvino")
    assert after.keys() == before.keys()  # still mapped, only no longer resident
    assert sum(after.values()) == 0, after

    again = infer_rows(request, {0: rows})
    assert np.array_equal(first, again)
    assert np.allclose(first, rows @ weights, rtol=1e-4, atol=1e-3)
