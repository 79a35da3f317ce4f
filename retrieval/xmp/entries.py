"""What objsearch writes into a photo's sidecar, built from the store's records.

Pure data, no XMP library: :mod:`.packet` merges these entries into a packet. Everything
here is deterministic (sorted, fixed number formats), so an unchanged index gives the same
entries and a re-run can tell that nothing changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from indexer.store import KIND_OBJECT, KIND_TEXT, Photo, Region, TextRegion

from .region_types import content_type

ROOT = "objsearch"  # the hierarchical-keyword root: objsearch|cat, objsearch|text|exit
# Iptc4xmpExt:rId of objsearch's regions: objsearch-<region id>, objsearch-text-<line id>
# (text lines are numbered apart from vector regions).
RID_PREFIX = "objsearch-"
FORMAT = "objsearch-xmp-1"  # bump when what is written changes: every sidecar is rewritten
_WORD = re.compile(r"\w[\w'-]*\w|\w", re.UNICODE)


@dataclass(frozen=True)
class RegionEntry:
    """One IPTC image region: a rectangle in units relative to the upright photo (0-1)."""

    rid: str
    name: str
    type_name: str
    type_id: str | None
    x: str
    y: str
    w: str
    h: str
    confidence: str | None


@dataclass(frozen=True)
class SidecarEntries:
    """objsearch's share of one sidecar."""

    keywords: tuple[str, ...]
    hierarchical: tuple[str, ...]
    caption: str
    regions: tuple[RegionEntry, ...]

    @property
    def digest(self) -> str:
        """A fingerprint of these entries, recorded in the sidecar as ``objsearch:digest``."""
        return hashlib.sha256(f"{FORMAT}{self!r}".encode()).hexdigest()[:24]

    @property
    def empty(self) -> bool:
        return not self.regions and not self.keywords


def _span(low: float, high: float, size: int) -> tuple[str, str]:
    """Start and length of ``[low, high]`` clipped to the photo, as fractions of ``size``."""
    start, end = (min(max(v / size, 0.0), 1.0) for v in (low, high))
    return f"{start:.6f}", f"{max(end - start, 0.0):.6f}"


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if len(w) > 1 or w.isdigit()]


def _unique(values: Iterable[str]) -> list[str]:
    """Each value once, the first spelling kept (``Cat`` and ``cat`` are one keyword)."""
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.casefold(), value)
    return sorted(seen.values(), key=str.casefold)


def region_entry(region: Region | TextRegion, width: int, height: int) -> RegionEntry | None:
    """The image region of an object or text region; None for the whole-photo region.

    A text region (OCR) is named by the words read and typed ``text``; an object region by
    its detector label and the label's content type.
    """
    text = getattr(region, "text", None) if region.kind == KIND_TEXT else None
    if region.kind != KIND_OBJECT and not text:
        return None
    name = " ".join(str(text).split()) if text else (getattr(region, "label", None) or "object")
    type_name, type_id = content_type(name, text=bool(text))
    x1, y1, x2, y2 = region.box
    x, w = _span(x1, x2, width)
    y, h = _span(y1, y2, height)
    confidence = region.confidence
    return RegionEntry(
        rid=f"{RID_PREFIX}text-{region.id}" if text else f"{RID_PREFIX}{region.id}",
        name=name,
        type_name=type_name,
        type_id=type_id,
        x=x,
        y=y,
        w=w,
        h=h,
        confidence=None if confidence is None else f"{confidence:.4f}",
    )


def sidecar_entries(photo: Photo, regions: Sequence[Region | TextRegion]) -> SidecarEntries:
    """Keywords (labels, words read), ``objsearch|...`` keywords, caption and regions."""
    width, height = max(photo.width, 1), max(photo.height, 1)
    entries = [e for e in (region_entry(r, width, height) for r in regions) if e is not None]
    labels = _unique(e.name for e in entries if e.type_name != KIND_TEXT)
    words = _unique(w for e in entries if e.type_name == KIND_TEXT for w in _words(e.name))
    hierarchical = [f"{ROOT}|{_segment(label)}" for label in labels]
    hierarchical += [f"{ROOT}|{KIND_TEXT}|{_segment(word)}" for word in words]
    return SidecarEntries(
        keywords=tuple(_unique([*labels, *words])),
        hierarchical=tuple(dict.fromkeys(hierarchical)),
        caption=photo.caption or "",
        regions=tuple(entries),
    )


def _segment(keyword: str) -> str:
    """A keyword as one level of a hierarchical keyword (``|`` separates levels)."""
    return keyword.replace("|", "/")
