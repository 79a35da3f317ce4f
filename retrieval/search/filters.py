"""Search filters: what people narrow a search by, turned into one SQL query.

:class:`SearchFilters` is a plain record (the CLI, the Python API and an HTTP layer all fill
it, from typed values or from strings) that validates and normalises itself. The filters are
pushed down: :func:`matching_region_ids` runs one SQL query over the indexed columns and
returns the region ids that pass, and the searcher ranks only those, so a rare filter still
returns ``top_k`` results when that many exist (never "search the top k, then drop").
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from indexer.store import KIND_OBJECT, Photo, Region
from indexer.textfold import query_words

from .fields import FieldError
from .text_match import lines_matching

EARTH_RADIUS_KM = 6371.0088
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?$"
)

DateLike = str | int | date | datetime


def parse_date(value: DateLike, name: str = "date") -> str:
    """The start of a year, month, day or instant as ISO text (``2023`` -> ``2023-01-01T00:00:00``).

    Accepts ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS]``, ints (years),
    ``date`` and ``datetime``. Raises :class:`~.fields.FieldError` naming ``name`` otherwise.
    """
    if isinstance(value, datetime):
        return value.replace(microsecond=0, tzinfo=None).isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    raw = str(value).strip()
    match = _DATE.match(raw)
    when = None
    if match:
        year, month, day, hour, minute, second = (int(p) if p else None for p in match.groups())
        try:
            when = datetime(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)  # type: ignore[arg-type]
        except ValueError:
            when = None
    if when is None:
        raise FieldError(
            name,
            f"cannot read {raw!r} as a date; use YYYY, YYYY-MM, YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM (e.g. 2023 or 2023-07-14).",
        )
    return when.isoformat()


def parse_near(value: str | Iterable[float]) -> tuple[float, float, float]:
    """``"48.85,2.29,5"`` (latitude, longitude, radius in km) -> a checked triple."""
    parts: list[Any] = value.split(",") if isinstance(value, str) else list(value)
    try:
        lat, lon, km = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise FieldError(
            "near", f"cannot read {value!r}; use LAT,LON,KM, e.g. 48.8584,2.2945,5."
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and km > 0 and math.isfinite(km)):
        raise FieldError(
            "near",
            f"{lat},{lon},{km} is out of range (latitude -90..90, longitude -180..180, "
            "radius above 0 km).",
        )
    return lat, lon, km


def _strings(values: str | Iterable[str] | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(v for v in values)


def _folder(path: str) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


@dataclass(frozen=True)
class SearchFilters:
    """Which photos and regions a search may return (all given conditions must hold).

    ``after``/``before``: dates (``2023``, ``2023-07``, ``2023-07-14``, a ``date``...); a photo
    passes ``after`` when taken at or after the start of that date, and ``before`` when taken
    before its start, so ``after=2023, before=2024`` is the year 2023. ``folders``: path
    prefixes (``~`` expanded; any one may match). ``labels``: detector labels of the matched
    object (any one; implies object regions). ``camera``: a case-insensitive part of the
    camera name. ``near``: ``(lat, lon, km)`` or ``"lat,lon,km"``. ``min_score``: drop
    results scoring below it. ``match``: words that must all appear in the photo's caption,
    detector labels or file name, or all in the text read in it (SQLite full-text search;
    ``cats`` matches ``cat``). ``ocr``: words that must all appear in one line of text read
    in the photo, in any case, accents folded, inside longer words too (``bake`` finds
    ``BAKERY``).
    """

    after: DateLike | None = None
    before: DateLike | None = None
    folders: tuple[str, ...] | list[str] | None = field(default=())
    labels: tuple[str, ...] | list[str] | None = field(default=())
    camera: str | None = None
    near: tuple[float, float, float] | str | None = None
    min_score: float | None = None
    match: str | None = None
    ocr: str | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        after = None if self.after is None else parse_date(self.after, "after")
        before = None if self.before is None else parse_date(self.before, "before")
        put(self, "after", after)
        put(self, "before", before)
        if after is not None and before is not None and after >= before:
            raise FieldError(
                "after",
                f"{after[:10]} and {{before}} {before[:10]} contradict each other: no date "
                "is in between.",
                also=["before"],
            )
        folders = _strings(self.folders)
        if any(not f.strip() for f in folders):
            raise FieldError("folders", "the folder is empty.")
        put(self, "folders", tuple(_folder(f) for f in folders))
        labels = _strings(self.labels)
        if any(not label.strip() for label in labels):
            raise FieldError("labels", "the label is empty.")
        put(self, "labels", tuple(dict.fromkeys(label.strip().lower() for label in labels)))
        if self.camera is not None:
            if not str(self.camera).strip():
                raise FieldError("camera", "the camera name is empty.")
            put(self, "camera", str(self.camera).strip())
        if self.near is not None:
            put(self, "near", parse_near(self.near))
        if self.min_score is not None:
            try:
                score = float(self.min_score)
            except (TypeError, ValueError):
                raise FieldError("min_score", f"{self.min_score!r} is not a number.") from None
            if not -1.0 <= score <= 1.0:
                raise FieldError("min_score", f"{score} is outside -1..1 (scores are cosines).")
            put(self, "min_score", score)
        if self.match is not None:
            if not fts_query(str(self.match)):
                raise FieldError("match", "give at least one word to match.")
            put(self, "match", str(self.match).strip())
        if self.ocr is not None:
            if not query_words(str(self.ocr)):
                raise FieldError("ocr", "give at least one word to find in the photos' text.")
            put(self, "ocr", " ".join(query_words(str(self.ocr))))

    @property
    def restricts_rows(self) -> bool:
        """True when some condition needs SQL (``min_score`` alone does not)."""
        return bool(
            self.after
            or self.before
            or self.folders
            or self.labels
            or self.camera
            or self.near
            or self.match
            or self.ocr
        )

    @property
    def needs_metadata(self) -> bool:
        """True when a condition reads EXIF columns (absent for not-yet-upgraded photos)."""
        return bool(self.after or self.before or self.camera or self.near)


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(words: str) -> str:
    """People's words as an FTS5 query: every word must appear (quoted: no operators)."""
    return " ".join(f'"{w}"' for w in _WORD.findall(words))


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix_range(folder: str) -> tuple[str, str]:
    """[low, high) bounds of every path under ``folder`` (index-friendly, unlike LIKE)."""
    prefix = folder if folder.endswith(os.sep) else folder + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _near_conditions(near: tuple[float, float, float]) -> list[Any]:
    """A latitude/longitude box (uses the index) plus the exact great-circle test."""
    lat, lon, km = near
    dlat = math.degrees(km / EARTH_RADIUS_KM)
    conds: list[Any] = [
        Photo.gps_lat.is_not(None),
        Photo.gps_lat.between(lat - dlat, lat + dlat),
    ]
    cos_lat = math.cos(math.radians(min(89.9, abs(lat) + dlat)))
    dlon = 180.0 if cos_lat <= 0 or lat + dlat >= 90 or lat - dlat <= -90 else dlat / cos_lat
    if dlon < 180.0:
        low, high = lon - dlon, lon + dlon
        if low < -180:
            conds.append(or_(Photo.gps_lon >= low + 360, Photo.gps_lon <= high))
        elif high > 180:
            conds.append(or_(Photo.gps_lon >= low, Photo.gps_lon <= high - 360))
        else:
            conds.append(Photo.gps_lon.between(low, high))
    conds.append(func.objsearch_km(Photo.gps_lat, Photo.gps_lon, lat, lon) <= km)
    return conds


def _register_functions(session: Session) -> None:
    raw = session.connection().connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection):
        raw.create_function("objsearch_km", 4, haversine_km, deterministic=True)


def photo_conditions(session: Session, filters: SearchFilters) -> list[Any]:
    """SQL conditions on ``Photo`` for every filter that speaks of the photo (not its regions)."""
    conds: list[Any] = []
    if filters.after:
        conds.append(Photo.taken_at >= filters.after)
    if filters.before:
        conds.append(Photo.taken_at < filters.before)
    if filters.folders:
        ranges = []
        for folder in filters.folders:
            low, high = _prefix_range(folder)
            ranges.append(or_(Photo.path == folder, and_(Photo.path >= low, Photo.path < high)))
        conds.append(or_(*ranges))
    if filters.camera:
        conds.append(Photo.camera.like(f"%{_like_escape(filters.camera)}%", escape="\\"))
    if filters.near:
        _register_functions(session)
        conds += _near_conditions(filters.near)  # type: ignore[arg-type]
    if filters.match:
        fts = fts_query(filters.match)
        matched = text("SELECT rowid FROM photo_text WHERE photo_text MATCH :fts").bindparams(
            fts=fts
        )
        read = text("SELECT rowid FROM photo_words WHERE photo_words MATCH :words").bindparams(
            words=fts
        )
        conds.append(or_(Photo.id.in_(matched), Photo.id.in_(read)))
    if filters.ocr:
        conds.append(Photo.id.in_(lines_matching(filters.ocr.split(), photo_ids=True)))
    return conds


def matching_region_ids(
    session: Session, filters: SearchFilters, kind: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(region ids ascending, their photo ids) of the regions passing ``filters`` and ``kind``."""
    conds = photo_conditions(session, filters)
    if filters.labels:
        conds.append(Region.label.collate("NOCASE").in_(filters.labels))
        kind = KIND_OBJECT
    if kind:
        conds.append(Region.kind == kind)
    query = select(Region.id, Region.photo_id).join(Photo, Photo.id == Region.photo_id)
    result = session.connection().execute(query.where(*conds))
    # The driver's plain tuples: tens of thousands of id pairs, no row objects to build.
    rows = result.cursor.fetchall()
    result.close()
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=2 * len(rows))
    pairs = flat.reshape(-1, 2)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def photos_without_metadata(session: Session) -> int:
    """Photos indexed before metadata existed (their dates, camera and GPS are unknown yet)."""
    return int(session.scalar(select(func.count(Photo.id)).where(Photo.date_source.is_(None))) or 0)
