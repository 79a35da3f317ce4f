"""A photo manager reads the sidecars: darktable-cli, headless, imports their keywords.

darktable-cli develops a photo with its sidecar and writes the result; its tags come from
the sidecar (``dc:subject`` and ``lr:hierarchicalSubject``: the photo itself holds none)
and are written into the exported JPEG, where ExifTool reads them back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.sidecars import as_list, cli_export, darktable_cli, read_xmp


def test_darktable_imports_the_keywords_of_a_sidecar(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    tool = darktable_cli()
    photos, index_dir = library
    assert cli_export(index_dir)["written"] == 6
    photo = photos / "trips" / "trip0.jpg"
    out = tmp_path / "developed.jpg"
    done = subprocess.run(
        [tool, str(photo), f"{photo}.xmp", str(out), "--core",
         "--configdir", str(tmp_path / "darktable"), "--library", ":memory:"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and out.is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    (developed,) = read_xmp(out)
    # "objsearch" is the root of the imported hierarchical tag objsearch|cat.
    assert {"cat", "objsearch"} <= set(as_list(developed.get("Subject")))
