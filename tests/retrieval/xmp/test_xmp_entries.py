"""objsearch's share of a sidecar, built from store records (no XMP library involved)."""

from __future__ import annotations

import pytest

from indexer.store import KIND_IMAGE, KIND_OBJECT, Photo, Region
from retrieval.xmp.entries import region_entry, sidecar_entries
from retrieval.xmp.naming import sidecar_path
from retrieval.xmp.region_types import IPTC_REGION_TYPES, content_type


def photo(caption: str = "2 cats, 1 couch") -> Photo:
    return Photo(id=1, path="/p/cats.jpg", width=640, height=480, caption=caption)


def region(
    rid: int, kind: str, box: tuple, label: str | None = None, conf: float | None = None
) -> Region:
    x1, y1, x2, y2 = box
    return Region(id=rid, kind=kind, x1=x1, y1=y1, x2=x2, y2=y2, label=label, confidence=conf)


def test_object_regions_become_relative_rectangles_with_their_label() -> None:
    regions = [
        region(1, KIND_IMAGE, (0, 0, 640, 480)),
        region(2, KIND_OBJECT, (64, 48, 320, 240), "cat", 0.91234),
        region(3, KIND_OBJECT, (320, 0, 700, 480), "Cat", 0.5),  # past the edge: clamped
        region(4, KIND_OBJECT, (0, 240, 640, 480), "couch", 0.7),
    ]
    entries = sidecar_entries(photo(), regions)
    assert entries.keywords == ("cat", "couch")  # "Cat" and "cat" are one keyword
    assert entries.hierarchical == ("objsearch|cat", "objsearch|couch")
    assert entries.caption == "2 cats, 1 couch"
    assert [e.rid for e in entries.regions] == ["objsearch-2", "objsearch-3", "objsearch-4"]
    first, second, _ = entries.regions
    assert (first.x, first.y, first.w, first.h) == ("0.100000", "0.100000", "0.400000", "0.400000")
    assert first.confidence == "0.9123" and first.type_id == IPTC_REGION_TYPES + "animal"
    assert (second.x, second.w) == ("0.500000", "0.500000")  # clipped at the right edge


def test_text_regions_are_named_by_their_words() -> None:
    """OCR regions (kind "text" with the words read in ``text``) map the same way."""
    sign = region(5, "text", (10, 10, 110, 40))
    sign.text = "EXIT  12\n"  # type: ignore[attr-defined]
    blank = region(6, "text", (0, 0, 5, 5))
    blank.text = ""  # type: ignore[attr-defined]
    entries = sidecar_entries(photo(), [sign, blank, region(7, KIND_OBJECT, (0, 0, 9, 9), "car")])
    names = [(e.name, e.type_name) for e in entries.regions]
    assert names == [("EXIT 12", "text"), ("car", "vehicle")]
    assert entries.keywords == ("12", "car", "EXIT")
    assert entries.hierarchical == ("objsearch|car", "objsearch|text|12", "objsearch|text|EXIT")
    assert region_entry(blank, 640, 480) is None


@pytest.mark.parametrize(
    ("label", "kind"),
    [("person", "human"), ("dog", "animal"), ("bus", "vehicle"), ("pizza", "food"),
     ("potted plant", "plant"), ("tie", "clothing"), ("laptop", "product"),
     ("dragonfly", "object")],
)  # fmt: skip
def test_content_types(label: str, kind: str) -> None:
    name, identifier = content_type(label)
    assert name == kind
    assert identifier == (None if kind == "object" else IPTC_REGION_TYPES + kind)


def test_sidecar_names() -> None:
    assert sidecar_path("/p/IMG_1.CR2") == "/p/IMG_1.CR2.xmp"
    assert sidecar_path("/p/IMG_1.CR2", "replace") == "/p/IMG_1.xmp"
    with pytest.raises(ValueError):
        sidecar_path("/p/a.jpg", "other")
