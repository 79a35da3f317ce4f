"""EXIF metadata: dates with their source, camera names, GPS in decimal degrees."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from indexer.media.metadata import (
    SOURCE_DIGITIZED,
    SOURCE_FILE,
    SOURCE_ORIGINAL,
    camera_name,
    gps_position,
    metadata_of,
    parse_exif_date,
)
from tests.fixtures.exif_photos import write_photo


def meta_of(path: Path):
    with Image.open(path) as image:
        return metadata_of(image, os.stat(path).st_mtime_ns)


def test_original_date_camera_and_gps(tmp_path: Path) -> None:
    path = write_photo(
        tmp_path / "a.jpg",
        taken="2023:07:14 18:30:05",
        digitized="2023:07:15 09:00:00",
        make="Canon",
        model="Canon EOS 5D",
        gps=(48.858370, 2.294481),
    )
    meta = meta_of(path)
    assert meta.taken_at == "2023-07-14T18:30:05"
    assert meta.date_source == SOURCE_ORIGINAL
    assert meta.camera == "Canon EOS 5D"
    assert meta.gps_lat == pytest.approx(48.858370, abs=1e-5)
    assert meta.gps_lon == pytest.approx(2.294481, abs=1e-5)


def test_southern_western_hemisphere(tmp_path: Path) -> None:
    meta = meta_of(write_photo(tmp_path / "rio.jpg", gps=(-22.951916, -43.210487)))
    assert meta.gps == pytest.approx((-22.951916, -43.210487), abs=1e-5)


def test_digitized_date_when_no_original(tmp_path: Path) -> None:
    meta = meta_of(write_photo(tmp_path / "scan.jpg", digitized="1999:12:31 23:59:58"))
    assert (meta.taken_at, meta.date_source) == ("1999-12-31T23:59:58", SOURCE_DIGITIZED)


def test_file_time_when_no_exif_date(tmp_path: Path) -> None:
    path = write_photo(tmp_path / "plain.png", make="Apple", model="iPhone 15")
    stamp = datetime(2021, 3, 4, 5, 6, 7).timestamp()
    os.utime(path, (stamp, stamp))
    meta = meta_of(path)
    assert (meta.taken_at, meta.date_source) == ("2021-03-04T05:06:07", SOURCE_FILE)
    assert meta.camera == "Apple iPhone 15"
    assert meta.gps is None


def test_placeholder_date_falls_back(tmp_path: Path) -> None:
    path = write_photo(
        tmp_path / "zero.jpg", taken="0000:00:00 00:00:00", digitized="    :  :     "
    )
    assert meta_of(path).date_source == SOURCE_FILE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2023:07:14 18:30:05", "2023-07-14T18:30:05"),
        ("2023-07-14T18:30:05+02:00", "2023-07-14T18:30:05"),
        (b"2023:07:14 18:30:05\x00", "2023-07-14T18:30:05"),
        ("2023:07:14", "2023-07-14T00:00:00"),
        ("2023:13:14 18:30:05", None),
        ("0000:00:00 00:00:00", None),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_exif_date(raw: object, expected: str | None) -> None:
    assert parse_exif_date(raw) == expected


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Canon", "Canon EOS 5D", "Canon EOS 5D"),
        ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
        ("Apple", "iPhone 15", "Apple iPhone 15"),
        ("FUJIFILM\x00", "", "FUJIFILM"),
        (None, None, None),
    ],
)
def test_camera_name(make: str | None, model: str | None, expected: str | None) -> None:
    assert camera_name(make, model) == expected


@pytest.mark.parametrize(
    "gps",
    [
        {},
        {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)},  # "no fix" placeholder
        {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)},  # out of range
        {1: "N", 2: "garbage", 3: "E", 4: (2.0, 0.0, 0.0)},
    ],
)
def test_invalid_gps_is_none(gps: dict) -> None:
    assert gps_position(gps) == (None, None)


def test_heic_metadata_and_orientation(tmp_path: Path) -> None:
    """A phone-style HEIC (pillow-heif) is decoded upright with its EXIF read."""
    from indexer.media.decode import read_photo

    path = write_photo(
        tmp_path / "phone.heic",
        size=(80, 60),
        taken="2024:05:01 12:00:00",
        make="Apple",
        model="iPhone 15 Pro",
        gps=(37.7749, -122.4194),
        orientation=6,
    )
    photo = read_photo(str(path))
    assert (photo.width, photo.height) == (60, 80)  # rotated upright
    assert photo.metadata.taken_at == "2024-05-01T12:00:00"
    assert photo.metadata.camera == "Apple iPhone 15 Pro"
    assert photo.metadata.gps == pytest.approx((37.7749, -122.4194), abs=1e-4)


def test_avif_is_read_upright(tmp_path: Path) -> None:
    from indexer.media.decode import read_photo

    path = write_photo(
        tmp_path / "a.avif", size=(80, 60), taken="2024:05:01 12:00:00", orientation=6
    )
    photo = read_photo(str(path))
    assert (photo.width, photo.height) == (60, 80)
    assert photo.metadata.date_source == SOURCE_ORIGINAL
