"""Give back the resident pages of model files that OpenVINO has mapped and already packed.

OpenVINO maps a converted model's weights (the IR's ``.bin``, or the compiled blob it caches)
read-only into the process and, on the first inference, packs them into its own memory in
the layout its kernels use. The mapped pages stay resident after that although nothing
reads them: about 170 MB for the ViT-B/32 image tower in bf16 (measured: 573 -> 405 MiB
resident after its first batches, and no mapped page read again over six more batch
sizes). Dropping them from this process's page tables changes nothing else: the mapping
stays, its file is unchanged, and a page read again comes back from the page cache.

Only read-only shared mappings under one folder (objsearch's conversion cache) are touched,
so no written page can be lost. Linux only; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("objsearch")

MADV_DONTNEED = 4  # Linux: drop the pages; a shared file mapping reads them again on access


@dataclass(frozen=True)
class Mapping:
    """One line of ``/proc/self/maps``: an address range, its permissions and its file."""

    start: int
    end: int
    perms: str
    path: str

    @property
    def read_only_shared(self) -> bool:
        return self.perms.startswith("r") and "w" not in self.perms and self.perms.endswith("s")


def parse_maps(text: str) -> list[Mapping]:
    """The file-backed mappings in the text of ``/proc/self/maps``."""
    out: list[Mapping] = []
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        start, _, end = fields[0].partition("-")
        out.append(Mapping(int(start, 16), int(end, 16), fields[1], fields[5]))
    return out


def mappings_under(folder: Path, maps: list[Mapping]) -> list[Mapping]:
    """The read-only shared mappings of files inside ``folder``."""
    prefix = str(folder.resolve()).rstrip("/") + "/"
    return [m for m in maps if m.read_only_shared and m.path.startswith(prefix)]


def release_mapped_pages(folder: Path) -> int:
    """Drop the resident pages of the read-only shared mappings of files under ``folder``;
    the number of mappings released (0 where this is not Linux or nothing is mapped)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            chosen = mappings_under(folder, parse_maps(fh.read()))
        if not chosen:
            return 0
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
    except (OSError, AttributeError) as exc:  # no /proc, no madvise: memory stays as it was
        log.debug("Mapped model pages not released: %s", exc)
        return 0
    released = 0
    for m in chosen:
        if madvise(m.start, m.end - m.start, MADV_DONTNEED) == 0:
            released += 1
        else:
            log.debug("madvise failed on %s: errno %d", m.path, ctypes.get_errno())
    return released
