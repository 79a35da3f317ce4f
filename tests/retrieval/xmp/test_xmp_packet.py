"""Merging into and out of XMP packets (python-exiv2), checked with ExifTool where it reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from retrieval.xmp import packet as xmp
from retrieval.xmp.entries import RegionEntry, SidecarEntries
from tests.fixtures.sidecars import USER_SIDECAR, as_list, content, read_xmp, user_fields

CAT = RegionEntry(
    rid="objsearch-7", name="cat", type_name="animal",
    type_id="http://cv.iptc.org/newscodes/imageregiontype/animal",
    x="0.100000", y="0.200000", w="0.300000", h="0.400000", confidence="0.9100",
)  # fmt: skip
DRAGONFLY = RegionEntry(
    rid="objsearch-8", name="dragonfly", type_name="object", type_id=None,
    x="0.500000", y="0.500000", w="0.100000", h="0.100000", confidence=None,
)  # fmt: skip
ENTRIES = SidecarEntries(
    keywords=("cat", "dragonfly"),
    hierarchical=("objsearch|cat", "objsearch|dragonfly"),
    caption="1 cat, 1 dragonfly",
    regions=(CAT, DRAGONFLY),
)


def merged(raw: bytes | None, entries: SidecarEntries = ENTRIES) -> bytes:
    packet = xmp.new_packet() if raw is None else xmp.parse(raw)
    xmp.merge(packet, entries, created=raw is None)
    return xmp.serialize(packet)


def stripped(raw: bytes) -> xmp.Packet:
    packet = xmp.parse(raw)
    xmp.strip(packet)
    return packet


def reading(tmp_path: Path, data: bytes, name: str = "photo.jpg.xmp") -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    (record,) = read_xmp(path)
    return record


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \n",
        b"not xmp at all",
        USER_SIDECAR.encode()[:700],  # truncated mid-element
        USER_SIDECAR.replace("<rdf:li>cat</rdf:li>", "<rdf:li>cat</rdf:lu>").encode(),
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64,  # another file under the sidecar's name
    ],
    ids=["empty", "blank", "text", "truncated", "malformed", "png"],
)
def test_damaged_packets_are_refused(raw: bytes) -> None:
    with pytest.raises(xmp.DamagedSidecar):
        xmp.parse(raw)


def test_a_new_sidecar_holds_objsearchs_entries(tmp_path: Path) -> None:
    record = reading(tmp_path, merged(None))
    assert sorted(as_list(record["Subject"])) == ["cat", "dragonfly"]
    assert record["Caption"] == "1 cat, 1 dragonfly" and record["Created"] in (True, "True")
    regions = as_list(record["ImageRegion"])
    assert [r["RId"] for r in regions] == ["objsearch-7", "objsearch-8"]
    assert regions[1]["RCtype"] == [{"Name": "object"}]  # no vocabulary term fits
    assert "XMP-objsearch:Confidence" not in regions[1]
    packet = xmp.parse(merged(None))
    assert packet.created_by_objsearch
    xmp.strip(packet)
    assert packet.empty and packet.changed


def test_merging_twice_gives_the_same_content() -> None:
    once = merged(USER_SIDECAR.encode())
    # The same content; the bytes may differ in namespace prefixes (Iptc4xmpExt/iptcExt).
    assert content(xmp.parse(merged(once)).data) == content(xmp.parse(once).data)


def test_the_digest_tells_current_entries_without_parsing() -> None:
    once = merged(USER_SIDECAR.encode())
    assert xmp.is_current(once, ENTRIES)
    assert not xmp.is_current(USER_SIDECAR.encode(), ENTRIES)
    moved = SidecarEntries(ENTRIES.keywords, ENTRIES.hierarchical, ENTRIES.caption,
                           (CAT, replace(DRAGONFLY, x="0.600000")))  # fmt: skip
    assert not xmp.is_current(once, moved)
    # An app that rewrote the sidecar without objsearch's regions but kept its digest.
    assert not xmp.is_current(once.replace(b"objsearch-8", b"lost"), ENTRIES)


def test_a_users_keyword_in_another_case_is_neither_added_nor_removed(tmp_path: Path) -> None:
    user = USER_SIDECAR.replace("<rdf:li>cat</rdf:li>", "<rdf:li>Cat</rdf:li>").encode()
    record = reading(tmp_path, merged(user))
    assert sorted(as_list(record["Subject"])) == ["Cat", "dragonfly", "holiday"]
    assert as_list(record["Keywords"]) == ["dragonfly"]  # what objsearch added
    back = reading(tmp_path, xmp.serialize(stripped(merged(user))), "back.xmp")
    assert sorted(as_list(back["Subject"])) == ["Cat", "holiday"]


def test_new_entries_replace_the_old_ones() -> None:
    first = merged(USER_SIDECAR.encode())
    fewer = SidecarEntries(("dog",), ("objsearch|dog",), "1 dog", (CAT,))
    packet = xmp.parse(merged(first, fewer))
    rows = {key: value for key, _, value in content(packet.data)}
    assert rows["Xmp.dc.subject"] == "cat, holiday, dog"
    assert rows["Xmp.lr.hierarchicalSubject"] == "places|lake, objsearch|dog"
    assert rows[xmp.ADDED] == "dog"
    assert rows["Xmp.iptcExt.ImageRegion[2]/iptcExt:rId"] == "objsearch-7"
    assert "Xmp.iptcExt.ImageRegion[3]" not in rows  # the dragonfly is gone


def test_strip_leaves_a_packet_without_objsearch_unchanged() -> None:
    assert not stripped(USER_SIDECAR.encode()).changed


def test_strip_gives_back_the_users_sidecar(tmp_path: Path) -> None:
    original = reading(tmp_path, USER_SIDECAR.encode(), "original.xmp")
    back = reading(tmp_path, xmp.serialize(stripped(merged(USER_SIDECAR.encode()))))
    assert user_fields(back) == user_fields(original)
