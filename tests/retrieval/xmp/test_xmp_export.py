"""``objsearch export --xmp`` end to end: a real index, real files, read back by ExifTool.

ExifTool is the independent reader: it checks the keywords, the regions and their boxes
(within 0.5 % of the photo's size), that a user's sidecar keeps everything through two
exports with objsearch's entries present once, and that ``--remove`` gives it back as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.indexing import Indexer
from indexer.store import KIND_IMAGE, KIND_OBJECT, Photo, Region, Store
from retrieval.cli import app
from retrieval.search.filters import SearchFilters
from retrieval.xmp import REPLACE, export_sidecars
from retrieval.xmp.export import plan_sidecar
from tests.fixtures import Models, make_indexer, write_photo
from tests.fixtures.sidecars import (
    USER_SIDECAR,
    as_list,
    cli_export,
    exiftool,
    read_xmp,
    user_fields,
)


def stored(index_dir: Path) -> dict[str, tuple]:
    """Photo path -> (photo, its object regions) from the store."""
    with Store(index_dir) as store:
        return {
            p.path: (p, [r for r in regions if r.kind == KIND_OBJECT])
            for p, regions in store.iter_photos()
        }


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every photo's content hash and modification time."""
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.suffix in (".jpg", ".png")
    }


def sidecars(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.xmp"))


def test_sidecars_hold_the_labels_regions_and_caption(library: tuple[Path, Path]) -> None:
    photos, index_dir = library
    summary = cli_export(index_dir)
    assert summary["written"] == 6 and summary["failures"] == 0
    photos_in_store = stored(index_dir)
    readings = read_xmp(*(Path(p + ".xmp") for p in photos_in_store))
    for reading in readings:
        photo, regions = photos_in_store[reading["SourceFile"][: -len(".xmp")]]
        labels = sorted({r.label for r in regions})
        assert sorted(as_list(reading.get("Subject"))) == labels
        assert sorted(as_list(reading.get("HierarchicalSubject"))) == [
            f"objsearch|{label}" for label in labels
        ]
        assert reading.get("Caption") == photo.caption  # objsearch:caption
        assert "Description" not in reading  # the user's field stays the user's
        shown = {item["RId"]: item for item in as_list(reading.get("ImageRegion"))}
        assert len(shown) == len(regions)
        for region in regions:
            item = shown[f"objsearch-{region.id}"]
            assert item["Name"] == region.label
            assert item["RCtype"][0]["Identifier"] == [
                "http://cv.iptc.org/newscodes/imageregiontype/animal"  # "cat"
            ]
            box = item["RegionBoundary"]
            assert box["RbShape"] == "rectangle" and box["RbUnit"] == "relative"
            x1, y1, x2, y2 = region.box
            w, h = photo.width, photo.height
            assert abs(box["RbX"] * w - x1) <= 0.005 * w
            assert abs(box["RbY"] * h - y1) <= 0.005 * h
            assert abs(box["RbW"] * w - (x2 - x1)) <= 0.005 * w
            assert abs(box["RbH"] * h - (y2 - y1)) <= 0.005 * h
            assert float(item["XMP-objsearch:Confidence"]) == pytest.approx(
                region.confidence, abs=1e-4
            )


def test_the_readme_check_shows_labels_and_regions_and_remove_takes_them_out(
    library: tuple[Path, Path],
) -> None:
    photos, index_dir = library
    result = CliRunner().invoke(app, ["export", "--index", str(index_dir), "--xmp"])
    assert result.exit_code == 0, result.output
    assert "6 sidecars written, 0 updated, 0 unchanged, 0 failed" in result.stdout
    sidecar = photos / "trips" / "trip0.jpg.xmp"
    command = [exiftool(), "-XMP-dc:Subject", "-XMP-iptcExt:ImageRegion*", str(sidecar)]
    shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "Subject                         : cat" in shown
    assert "Image Region Name" in shown and "Image Region Boundary X" in shown

    result = CliRunner().invoke(app, ["export", "--index", str(index_dir), "--xmp", "--remove"])
    assert result.exit_code == 0, result.output
    assert "0 updated, 6 removed" in result.stdout
    assert sidecars(photos) == []  # objsearch created them and they held nothing else


def test_a_user_sidecar_survives_two_exports_and_remove_restores_it(
    library: tuple[Path, Path],
) -> None:
    photos, index_dir = library
    sidecar = photos / "trips" / "trip1.jpg.xmp"
    sidecar.write_text(USER_SIDECAR, encoding="utf-8")
    (original,) = read_xmp(sidecar)
    _, regions = stored(index_dir)[str(photos / "trips" / "trip1.jpg")]

    first = cli_export(index_dir)
    assert (first["written"], first["updated"]) == (5, 1)
    second = cli_export(index_dir)
    assert second["unchanged"] == 6 and second["written"] == second["updated"] == 0

    (merged,) = read_xmp(sidecar)
    for field in ("Rating", "Label", "Title", "Description", "Exposure2012", "ColorTemperature"):
        assert merged[field] == original[field], field
    assert merged["RegionInfo"] == original["RegionInfo"]  # the MWG face region
    assert merged["History"] == original["History"]  # darktable's edits
    assert sorted(as_list(merged["Subject"])) == ["cat", "holiday"]  # "cat" once, the user's
    assert "Keywords" not in merged  # objsearch added no flat keyword: the user had "cat"
    assert sorted(as_list(merged["HierarchicalSubject"])) == ["objsearch|cat", "places|lake"]
    items = as_list(merged["ImageRegion"])
    assert [i["RId"] for i in items] == ["face-1"] + [f"objsearch-{r.id}" for r in regions]
    assert items[0] == as_list(original["ImageRegion"])[0]  # the other app's region, untouched

    removed = cli_export(index_dir, "--remove")
    assert removed["updated"] == 1 and removed["removed"] == 5
    (restored,) = read_xmp(sidecar)
    assert user_fields(restored) == user_fields(original)
    assert sidecars(photos) == [sidecar]


def test_a_rerun_over_an_unchanged_index_rewrites_no_file(library: tuple[Path, Path]) -> None:
    photos, index_dir = library
    cli_export(index_dir)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sidecars(photos)}
    summary = cli_export(index_dir)
    assert summary["unchanged"] == 6
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sidecars(photos)} == before


def test_a_reindexed_photo_gets_its_new_regions_once(
    fresh_library: tuple[Path, Path], models: Models
) -> None:
    photos, index_dir = fresh_library
    cli_export(index_dir)
    changed = photos / "home" / "home1.png"
    write_photo(changed, (120, 90), seed=99)  # new bytes, new size: new regions
    make_indexer(models, index_dir).index([photos])
    summary = cli_export(index_dir)
    assert summary["updated"] == 1 and summary["unchanged"] == 5
    photo, regions = stored(index_dir)[str(changed)]
    (reading,) = read_xmp(Path(f"{changed}.xmp"))
    items = as_list(reading["ImageRegion"])
    assert sorted(i["RId"] for i in items) == sorted(f"objsearch-{r.id}" for r in regions)
    assert as_list(reading["HierarchicalSubject"]) == ["objsearch|cat"]


def test_photos_are_never_modified(library: tuple[Path, Path]) -> None:
    photos, index_dir = library
    before = fingerprint(photos)
    cli_export(index_dir)
    cli_export(index_dir, "--remove")
    assert fingerprint(photos) == before


def test_filters_choose_the_photos(library: tuple[Path, Path]) -> None:
    photos, index_dir = library
    summary = cli_export(index_dir, "--in", str(photos / "home"))
    assert summary["written"] == 3
    assert [p.name for p in sidecars(photos)] == ["home0.png.xmp", "home1.png.xmp", "home2.png.xmp"]
    assert cli_export(index_dir, "--label", "no-such-label")["written"] == 0
    with Store(index_dir) as store:
        later = export_sidecars(store, filters=SearchFilters(after="2999"))
    assert later.photos == 0


def test_replace_naming_writes_photo_xmp_and_counts_a_shared_name(
    fresh_library: tuple[Path, Path], models: Models
) -> None:
    photos, index_dir = fresh_library
    write_photo(photos / "trips" / "trip0.png", (96, 72), seed=50)  # trip0.jpg's twin
    make_indexer(models, index_dir).index([photos])
    with Store(index_dir) as store:
        summary = export_sidecars(store, naming=REPLACE)
    assert summary.written == 6 and summary.failures == 1
    (path, reason) = summary.failed[0]
    assert path == str(photos / "trips" / "trip0.xmp") and "trip0.jpg" in reason
    assert (photos / "trips" / "trip0.xmp").is_file()
    assert not (photos / "trips" / "trip0.jpg.xmp").exists()


def test_bad_flags_are_usage_errors(library: tuple[Path, Path]) -> None:
    _, index_dir = library
    for args in (["--remove"], ["--xmp", "--output", "x.jsonl"], ["--xmp", "--xmp-name", "x"]):
        result = CliRunner().invoke(app, ["export", "--index", str(index_dir), *args])
        assert result.exit_code == 2, result.output
        assert "error:" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow
def test_real_detections_of_the_demo_photos(
    shared_assets: Path, models: Models, tmp_path: Path
) -> None:
    """The real YOLO11n on the demo photos: each sidecar names what the store holds."""
    photos = tmp_path / "photos"
    shutil.copytree(shared_assets / "photos", photos)
    for photo in photos.iterdir():
        photo.chmod(0o644)
    index_dir = tmp_path / "index"
    Indexer(
        index_dir,
        clip_model=str(models.clip_dir),
        detector_weights=str(shared_assets / "detector" / "yolo11n-coco.pt"),
        device="cpu",
        backend="torch",
        embedder=models.embedder,  # type: ignore[arg-type]
    ).index([photos])
    assert cli_export(index_dir)["written"] == 4
    photos_in_store = stored(index_dir)
    for reading in read_xmp(*(Path(p + ".xmp") for p in photos_in_store)):
        photo, regions = photos_in_store[reading["SourceFile"][: -len(".xmp")]]
        assert sorted(as_list(reading.get("Subject"))) == sorted({r.label for r in regions})
        items = as_list(reading.get("ImageRegion"))
        assert sorted(i["Name"] for i in items) == sorted(r.label for r in regions)
        assert reading.get("Caption") == photo.caption
    dogs = next(r for p, r in photos_in_store.values() if p.path.endswith("dogs.jpeg"))
    assert {r.label for r in dogs} >= {"dog"}


def test_a_photo_where_nothing_was_found_gets_no_sidecar(tmp_path: Path) -> None:
    photo = Photo(id=1, path=str(tmp_path / "empty.jpg"), width=64, height=48, caption="")
    whole = Region(id=1, kind=KIND_IMAGE, x1=0, y1=0, x2=64, y2=48, label=None, confidence=None)
    path = str(tmp_path / "empty.jpg.xmp")
    assert plan_sidecar(photo, [whole], path, remove=False).outcome == "unchanged"
    assert not Path(path).exists()
