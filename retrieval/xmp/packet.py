"""Merge objsearch's entries into an XMP packet, or take them out, keeping everything else.

The packet is parsed with exiv2 (python-exiv2, which bundles libexiv2 and Adobe's XMP
toolkit), so every property of the user's sidecar survives as it was: keywords, rating,
colour label, title, description, MWG face regions, develop settings and namespaces
objsearch has never heard of. objsearch's own entries are recognisable, so a re-run replaces
them and ``--remove`` takes them out:

- flat keywords (``dc:subject``) objsearch added are listed in ``objsearch:keywords``; a
  keyword the user had before (in any case) is never added twice and never removed;
- hierarchical keywords live under the ``objsearch|`` root;
- image regions carry ``Iptc4xmpExt:rId`` = ``objsearch-<region id>``; other regions (the
  user's, an app's) are kept in their order;
- the caption goes to ``objsearch:caption``, never over the user's ``dc:description``;
- ``objsearch:created`` marks a sidecar objsearch created, which ``--remove`` deletes once
  nothing else is left in it;
- ``objsearch:digest`` fingerprints the entries written, so an unchanged re-run can skip a
  sidecar without parsing it (:func:`is_current`).

Only the calling thread may use these functions: the XMP toolkit is not thread-safe.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from .entries import RID_PREFIX, ROOT, RegionEntry, SidecarEntries

NAMESPACE = "http://ns.objsearch.org/xmp/1.0/"
PREFIX = "objsearch"
SUBJECT = "Xmp.dc.subject"
HIERARCHICAL = "Xmp.lr.hierarchicalSubject"
REGIONS = "Xmp.iptcExt.ImageRegion"
OURS = f"Xmp.{PREFIX}."
ADDED = f"{OURS}keywords"
CAPTION = f"{OURS}caption"
CREATED = f"{OURS}created"
DIGEST = f"{OURS}digest"
_ELEMENT = re.compile(r"^Xmp\.iptcExt\.ImageRegion\[(\d+)\](.*)$")


class DamagedSidecar(Exception):
    """The sidecar is not a readable XMP packet: it must be left as it is."""


@dataclass
class Packet:
    """A parsed sidecar (exiv2's ``XmpData``); ``changed`` once merged or stripped."""

    data: object
    changed: bool = False

    @property
    def created_by_objsearch(self) -> bool:
        return any(d.key() == CREATED for d in self.data)  # type: ignore[attr-defined]

    @property
    def empty(self) -> bool:
        return self.data.count() == 0  # type: ignore[attr-defined]


@cache
def _exiv2():  # type: ignore[no-untyped-def]
    """exiv2, imported on first use, with objsearch's namespace registered once."""
    import exiv2

    exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
    return exiv2


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _exiv2_messages() -> Iterator[list[str]]:
    """exiv2's warnings while parsing: it reports a packet it cannot decode only there."""
    logger = logging.getLogger("exiv2")
    collect, propagate = _Collect(), logger.propagate
    logger.addHandler(collect)
    logger.propagate = False
    try:
        yield collect.messages
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate


def new_packet() -> Packet:
    """An empty packet for a photo without a sidecar."""
    return Packet(_exiv2().XmpData())


def is_current(raw: bytes, entries: SidecarEntries) -> bool:
    """Whether the sidecar's bytes already hold exactly these entries (no parse needed).

    ``objsearch:digest`` records the entries last written; their region ids must still be
    there too (an app that rewrote the file may have dropped the regions). Parsing costs
    milliseconds, this a few microseconds: it is what keeps an unchanged re-run fast.
    """
    if entries.digest.encode() not in raw:
        return False
    return all(
        f'{region.rid}"'.encode() in raw or f"{region.rid}<".encode() in raw
        for region in entries.regions
    )


def parse(raw: bytes) -> Packet:
    """Parse a sidecar's bytes; :class:`DamagedSidecar` when they are not a valid packet."""
    exiv2 = _exiv2()
    body = raw.lstrip()
    if not body:
        raise DamagedSidecar("the sidecar is empty")
    with _exiv2_messages() as messages:
        try:
            image = exiv2.ImageFactory.open(body)
            image.readMetadata()
        except exiv2.Exiv2Error as exc:
            raise DamagedSidecar(f"not an XMP sidecar ({exc.args[-1]})") from None
    if messages:  # exiv2 logs, rather than raises, a packet it failed to decode
        raise DamagedSidecar(f"damaged XMP ({messages[0]})")
    return Packet(image.xmpData())


def serialize(packet: Packet) -> bytes:
    """The packet as a standalone sidecar (UTF-8, XMP packet wrapper, no padding)."""
    exiv2 = _exiv2()
    flags = exiv2.XmpParser.XmpFormatFlags.useCompactFormat
    rc, text = exiv2.XmpParser.encode(packet.data, flags, 0)
    if rc != 0:
        raise DamagedSidecar(f"exiv2 could not write the packet (error {rc})")
    return text.encode("utf-8")


def merge(packet: Packet, entries: SidecarEntries, *, created: bool = False) -> None:
    """Replace objsearch's entries in ``packet`` with ``entries`` (the user's stay).

    The packet always changes: its digest differs unless :func:`is_current` said so first.
    """
    _rebuild(packet, entries, created=created)
    packet.changed = True


def strip(packet: Packet) -> None:
    """Take objsearch's entries out of ``packet`` (the user's stay)."""
    packet.changed = _rebuild(packet, None, created=False)


def _values(datum: object) -> list[str]:
    return [datum.toString(i) for i in range(datum.count())]  # type: ignore[attr-defined]


def _rebuild(packet: Packet, entries: SidecarEntries | None, *, created: bool) -> bool:
    """One pass over the old packet: keep what is not objsearch's, then append objsearch's.

    Returns whether the old packet held any of objsearch's entries.

    exiv2 flattens structures into keys (``...ImageRegion[2]/iptcExt:rId``), so the regions
    are regrouped by array index, objsearch's dropped and the rest renumbered 1..n.
    """
    exiv2 = _exiv2()
    old = packet.data
    new = exiv2.XmpData()
    subject = hierarchical = None
    added: list[str] = []
    regions: dict[int, list[object]] = {}
    ours: set[int] = set()
    was_created = had_ours = False
    for datum in old:  # type: ignore[attr-defined]
        key = datum.key()
        if key == SUBJECT:
            subject = datum
        elif key == HIERARCHICAL:
            hierarchical = datum
        elif key.startswith(OURS):
            had_ours = True
            if key == ADDED:
                added = _values(datum)
            was_created |= key == CREATED
        elif key.startswith(REGIONS):
            match = _ELEMENT.match(key)
            if match is None:
                continue  # the array itself: rewritten below
            index, rest = int(match.group(1)), match.group(2)
            regions.setdefault(index, []).append(datum)
            if rest == "/iptcExt:rId" and datum.toString().startswith(RID_PREFIX):
                ours.add(index)
        else:
            new.add(datum)

    user_keywords = _user_keywords(subject, added)
    wanted = entries.keywords if entries else ()
    have = {k.casefold() for k in user_keywords}
    ours_added = [k for k in wanted if k.casefold() not in have]
    _put_array(new, SUBJECT, subject, [*user_keywords, *ours_added])
    tree = _values(hierarchical) if hierarchical else []
    user_tree = [h for h in tree if not _ours_tree(h)]
    had_ours |= bool(ours) or len(user_tree) < len(tree)
    _put_array(
        new, HIERARCHICAL, hierarchical, [*user_tree, *(entries.hierarchical if entries else ())]
    )

    kept = [elements for index, elements in sorted(regions.items()) if index not in ours]
    new_regions = entries.regions if entries else ()
    if kept or new_regions:
        array = exiv2.XmpTextValue()
        array.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaBag)
        new.add(exiv2.XmpKey(REGIONS), array)
        for position, elements in enumerate(kept, start=1):
            for datum in elements:
                rest = _ELEMENT.match(datum.key()).group(2)  # type: ignore[union-attr,attr-defined]
                new.add(exiv2.XmpKey(f"{REGIONS}[{position}]{rest}"), datum.getValue())  # type: ignore[attr-defined]
        for position, region in enumerate(new_regions, start=len(kept) + 1):
            _add_region(exiv2, new, f"{REGIONS}[{position}]", region)

    if entries is not None:
        if ours_added:
            _put_array(new, ADDED, None, ours_added)
        if entries.caption:
            new.add(exiv2.XmpKey(CAPTION), exiv2.XmpTextValue(entries.caption))
        new.add(exiv2.XmpKey(DIGEST), exiv2.XmpTextValue(entries.digest))
        if created or was_created:
            new.add(exiv2.XmpKey(CREATED), exiv2.XmpTextValue("True"))
    packet.data = new
    return had_ours


def _ours_tree(keyword: str) -> bool:
    return keyword == ROOT or keyword.startswith(ROOT + "|")


def _user_keywords(subject: object | None, added: list[str]) -> list[str]:
    """``dc:subject`` without what objsearch added (each added keyword taken out once)."""
    keywords = _values(subject) if subject is not None else []
    for keyword in added:
        if keyword in keywords:
            keywords.remove(keyword)
    return keywords


def _put_array(new: object, key: str, old: object | None, values: list[str]) -> None:
    """Write an array property (a bag, or the old property's own array type) if not empty."""
    if not values:
        return
    exiv2 = _exiv2()
    type_id = old.typeId() if old is not None else exiv2.TypeId.xmpBag  # type: ignore[attr-defined]
    if type_id not in (exiv2.TypeId.xmpBag, exiv2.TypeId.xmpSeq):
        type_id = exiv2.TypeId.xmpBag  # a damaged single value becomes the bag it should be
    value = exiv2.Value.create(type_id)
    for item in values:
        value.read(item)
    new.add(exiv2.XmpKey(key), value)  # type: ignore[attr-defined]


def _struct(exiv2: object) -> object:
    value = exiv2.XmpTextValue()  # type: ignore[attr-defined]
    value.setXmpStruct()
    return value


def _add_region(exiv2: object, new: object, base: str, region: RegionEntry) -> None:
    """One IPTC image region: id, name, content type, relative rectangle, confidence."""
    add, key, text = new.add, exiv2.XmpKey, exiv2.XmpTextValue  # type: ignore[attr-defined]
    add(key(base), _struct(exiv2))
    add(key(f"{base}/iptcExt:rId"), text(region.rid))
    name = exiv2.Value.create(exiv2.TypeId.langAlt)  # type: ignore[attr-defined]
    name.read(f'lang="x-default" {region.name}')
    add(key(f"{base}/iptcExt:Name"), name)
    ctype = exiv2.XmpTextValue()  # type: ignore[attr-defined]
    ctype.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaBag)  # type: ignore[attr-defined]
    add(key(f"{base}/iptcExt:rCtype"), ctype)
    add(key(f"{base}/iptcExt:rCtype[1]"), _struct(exiv2))
    if region.type_id is not None:
        ids = exiv2.Value.create(exiv2.TypeId.xmpBag)  # type: ignore[attr-defined]
        ids.read(region.type_id)
        add(key(f"{base}/iptcExt:rCtype[1]/iptcExt:Identifier"), ids)
    type_name = exiv2.Value.create(exiv2.TypeId.langAlt)  # type: ignore[attr-defined]
    type_name.read(f'lang="x-default" {region.type_name}')
    add(key(f"{base}/iptcExt:rCtype[1]/iptcExt:Name"), type_name)
    boundary = f"{base}/iptcExt:RegionBoundary"
    add(key(boundary), _struct(exiv2))
    for field, value in (
        ("rbShape", "rectangle"),
        ("rbUnit", "relative"),
        ("rbX", region.x),
        ("rbY", region.y),
        ("rbW", region.w),
        ("rbH", region.h),
    ):
        add(key(f"{boundary}/iptcExt:{field}"), text(value))
    if region.confidence is not None:
        add(key(f"{base}/{PREFIX}:confidence"), text(region.confidence))
