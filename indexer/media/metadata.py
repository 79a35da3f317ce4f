"""Photo metadata from EXIF: when the photo was taken, with which camera, and where.

It reads the EXIF block PIL has already parsed from the open image, so it costs no extra
file read. The date falls back from DateTimeOriginal (shutter press) to DateTimeDigitized
(scan or write time) to the file's modification time, and ``date_source`` says which one
was used, so people can tell a camera date from a copy date. EXIF dates have no time zone:
they are kept as the camera's local wall-clock time, which is what people search by.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image

# EXIF tag numbers (PIL.ExifTags.Base / GPS).
_MAKE = 0x010F
_MODEL = 0x0110
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4

SOURCE_ORIGINAL = "exif-original"
SOURCE_DIGITIZED = "exif-digitized"
SOURCE_FILE = "file-mtime"

_EXIF_DATE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")


@dataclass(frozen=True)
class PhotoMetadata:
    """What the store records about a photo beyond its pixels.

    ``taken_at`` is ISO 8601 local time without zone (``2023-07-14T18:30:05``).
    """

    taken_at: str
    date_source: str
    camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None

    @property
    def gps(self) -> tuple[float, float] | None:
        if self.gps_lat is None or self.gps_lon is None:
            return None
        return (self.gps_lat, self.gps_lon)


def read_metadata(exif: Image.Exif | None, mtime_ns: int) -> PhotoMetadata:
    """Metadata from a parsed EXIF block (``image.getexif()``), the file mtime as fallback."""
    taken_at, source = None, SOURCE_FILE
    camera = gps_lat = gps_lon = None
    if exif:
        sub = _ifd(exif, _EXIF_IFD)
        for tag, name in (
            (_DATETIME_ORIGINAL, SOURCE_ORIGINAL),
            (_DATETIME_DIGITIZED, SOURCE_DIGITIZED),
        ):
            taken_at = parse_exif_date(sub.get(tag))
            if taken_at:
                source = name
                break
        camera = camera_name(exif.get(_MAKE), exif.get(_MODEL))
        gps_lat, gps_lon = gps_position(_ifd(exif, _GPS_IFD))
    if not taken_at:
        taken_at = datetime.fromtimestamp(mtime_ns / 1e9).replace(microsecond=0).isoformat()
    return PhotoMetadata(taken_at, source, camera, gps_lat, gps_lon)


def metadata_of(image: Image.Image | None, mtime_ns: int) -> PhotoMetadata:
    """:func:`read_metadata` for an open PIL image; a damaged EXIF block counts as none."""
    try:
        exif = image.getexif() if image is not None else None
    except Exception:  # PIL raises many types on malformed EXIF
        exif = None
    return read_metadata(exif, mtime_ns)


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # a malformed sub-IFD offset
        return {}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "").strip() if value is not None else ""


def parse_exif_date(value: Any) -> str | None:
    """``"2023:07:14 18:30:05"`` -> ``"2023-07-14T18:30:05"``; None for blank or invalid."""
    match = _EXIF_DATE.match(_text(value))
    if not match:
        return None
    parts = [int(p) if p else 0 for p in match.groups()]
    try:
        when = datetime(*parts)  # type: ignore[arg-type]
    except ValueError:  # "0000:00:00 00:00:00" and other placeholders
        return None
    return when.isoformat() if when.year >= 1800 else None


def camera_name(make: Any, model: Any) -> str | None:
    """One display name: ``Canon`` + ``Canon EOS 5D`` -> ``Canon EOS 5D``."""
    make_s, model_s = _text(make), _text(model)
    if not model_s:
        return make_s or None
    first = make_s.split()[0].lower() if make_s else ""
    if not make_s or model_s.lower().startswith(first):
        return model_s
    return f"{make_s} {model_s}"


def _degrees(value: Any) -> float | None:
    try:
        parts = [float(v) for v in value]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not parts or len(parts) > 3 or not all(math.isfinite(p) for p in parts):
        return None
    parts += [0.0] * (3 - len(parts))
    return parts[0] + parts[1] / 60.0 + parts[2] / 3600.0


def gps_position(gps: dict[int, Any]) -> tuple[float | None, float | None]:
    """Decimal (latitude, longitude) from an EXIF GPS IFD; (None, None) when absent/invalid.

    A fix of exactly (0, 0) is what some devices write when they had none: treated as none.
    """
    lat, lon = _degrees(gps.get(_GPS_LAT)), _degrees(gps.get(_GPS_LON))
    if lat is None or lon is None:
        return None, None
    if _text(gps.get(_GPS_LAT_REF)).upper().startswith("S"):
        lat = -lat
    if _text(gps.get(_GPS_LON_REF)).upper().startswith("W"):
        lon = -lon
    if abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None, None
    return round(lat, 7), round(lon, 7)
